"""Each dataset row's nearest keys from its last exact search, answering its later queries
without one while the policy's action there has moved less than the margin it left."""

from __future__ import annotations

import numpy as np

from offrl.neighbors.constraint import BOUND_SLACK_ABSOLUTE, BOUND_SLACK_RELATIVE
from offrl.neighbors.pruned_ivf import faiss_nearest


class RowMemory:
    """Each dataset row's `size` nearest keys from its last exact search, to answer its later
    queries without one.

    All queries of row b share the state part beta * s_b, so two of them differ only in their
    action parts, by delta = |a_new - a_old|. The search found the `size` nearest keys of the old
    query exactly, and every other key at least `outside` (the next one's distance) from it, so at
    least `outside - delta` from the new query. If the k-th nearest of the kept keys, re-scored, is
    within that, it is the exact answer. A search for `size + 1` keys needs a bound on their
    distance: the (size + 1)-th nearest of the row's certified candidates gives one.
    """

    def __init__(self, keys: np.ndarray, state_dim: int, candidates: np.ndarray, size: int):
        self.keys, self.state_dim, self.candidates, self.size = keys, state_dim, candidates, size
        self.nearest = np.zeros((len(keys), size), np.int32)
        self.outside = np.full(len(keys), -np.inf, np.float32)  # -inf: never searched
        self.actions = np.zeros((len(keys), keys.shape[1] - state_dim), np.float32)

    def recall(
        self, queries: np.ndarray, rows: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(k-th nearest rows, certified): exact wherever certified."""
        kept = self.nearest[rows]
        dist = np.linalg.norm(self.keys[kept] - queries[:, None], axis=-1)
        order = np.argsort(dist, axis=1, kind="stable")[:, k - 1 : k]
        kth_dist = np.take_along_axis(dist, order, axis=1)[:, 0]
        moved = np.linalg.norm(queries[:, self.state_dim :] - self.actions[rows], axis=1)
        reach = kth_dist * (1.0 + BOUND_SLACK_RELATIVE) + BOUND_SLACK_ABSOLUTE
        return np.take_along_axis(kept, order, axis=1)[:, 0], reach <= self.outside[rows] - moved

    def search(self, index, queries: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
        """k-th nearest rows by an exact search of `size + 1` keys, which are then kept."""
        around = self.keys[self.candidates[rows]] - queries[:, None]
        upper = np.partition((around**2).sum(-1), self.size, axis=1)[:, self.size]
        dist2, found = faiss_nearest(index, queries, self.size + 1, upper)
        self.nearest[rows] = found[:, : self.size]
        self.outside[rows] = np.sqrt(np.maximum(dist2[:, self.size], 0.0))
        self.actions[rows] = queries[:, self.state_dim :]
        return found[:, k - 1]
