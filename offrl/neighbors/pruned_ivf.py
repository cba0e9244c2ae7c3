"""Exact k-NN with a FAISS IVF index, visiting only the cells whose Voronoi bound can still hold a
closer key; and querying any FAISS index the same way."""

from __future__ import annotations

import numpy as np

from offrl.neighbors.constraint import BOUND_SLACK_ABSOLUTE, BOUND_SLACK_RELATIVE


def training_sample(keys: np.ndarray, size: int) -> np.ndarray:
    """A fixed subsample for k-means training, so the built index is deterministic."""
    if keys.shape[0] <= size:
        return keys
    rows = np.random.default_rng(0).choice(keys.shape[0], size, replace=False)
    return keys[np.sort(rows)]


def voronoi_bounds(cell_dist2: np.ndarray, cells: np.ndarray, centroid_gaps: np.ndarray):
    """Lower bounds on the distance from each query to any key in each of its ranked cells.

    A key in cell c is closer to mu_c than to the query's nearest centroid mu_a, so it lies beyond
    their bisector, at least (|q - mu_c|^2 - |q - mu_a|^2) / (2 |mu_c - mu_a|) from the query.
    """
    gaps = np.take_along_axis(centroid_gaps[cells[:, 0]], cells, axis=1)
    bounds = (cell_dist2 - cell_dist2[:, :1]) / np.maximum(2.0 * gaps, 1e-12)
    bounds[:, 0] = 0.0
    return np.maximum(bounds, 0.0)


def within_bound(bounds: np.ndarray, dist2: np.ndarray) -> np.ndarray:
    """Whether a cell at lower bound `bounds` may hold a key at squared distance <= `dist2`."""
    reach = np.sqrt(np.maximum(dist2, 0.0)) * (1.0 + BOUND_SLACK_RELATIVE) + BOUND_SLACK_ABSOLUTE
    return bounds <= reach


class PrunedIVF:
    """Exact k-NN with an IVF index. A query with a known upper bound on its k-th distance visits
    exactly the cells whose Voronoi bound is within it. Others visit cells nearest-first in growing
    rounds and stop once the k-th distance is within the bound of every cell not visited; queries
    still open after the last round, or whose bounded visit came up short, are searched flat."""

    def __init__(self, ivf, flat, rounds: tuple[int, ...] = (8, 32, 128)):
        self.ivf, self.flat, self.rounds = ivf, flat, rounds
        # Bounds in float64: their rounding must stay far below the pruning slack.
        self.centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist).astype(np.float64)
        self.centroid_norms = (self.centroids**2).sum(1)
        gap2 = (
            self.centroid_norms[:, None]
            + self.centroid_norms[None, :]
            - 2.0 * self.centroids @ self.centroids.T
        )
        self.centroid_gaps = np.sqrt(np.maximum(gap2, 0.0))

    def search(
        self, queries: np.ndarray, k: int, upper: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        dist2 = np.zeros((len(queries), k), np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        bounded = np.zeros(len(queries), bool) if upper is None else np.isfinite(upper)
        if bounded.any():
            dist2[bounded], found[bounded] = self._search_bounded(
                queries[bounded], k, upper[bounded]
            )
        todo = np.flatnonzero(~bounded)
        if todo.size:
            dist2[todo], found[todo] = self._search_in_rounds(queries[todo], k)
        short = np.flatnonzero(found[:, -1] < 0)
        if short.size:
            dist2[short], found[short] = self.flat.search(queries[short], k)
        return dist2, found

    def _search_bounded(self, queries: np.ndarray, k: int, upper: np.ndarray):
        """Only the cells whose bisector bound is within `upper`; no ranking of cells needed."""
        q = queries.astype(np.float64)
        cell_dist2 = (q**2).sum(1)[:, None] - 2.0 * q @ self.centroids.T + self.centroid_norms
        rows = np.arange(len(q))
        own = cell_dist2.argmin(axis=1)
        gaps = np.maximum(2.0 * self.centroid_gaps[own], 1e-12)
        bounds = np.maximum((cell_dist2 - cell_dist2[rows, own, None]) / gaps, 0.0)
        bounds[rows, own] = 0.0
        needed = within_bound(bounds, upper[:, None])
        depth = int(needed.sum(axis=1).max())
        # The needed cells first in each row; the rest of the row is skipped (list id -1).
        order = np.argsort(~needed, axis=1, kind="stable")[:, :depth]
        lists = np.where(np.take_along_axis(needed, order, axis=1), order, -1)
        coarse = np.take_along_axis(cell_dist2, order, axis=1).astype(np.float32)
        self.ivf.nprobe = depth
        return self.ivf.search_preassigned(queries, k, lists, coarse)

    def _search_in_rounds(self, queries: np.ndarray, k: int):
        nlist = self.ivf.nlist
        cell_dist2, cells = self.ivf.quantizer.search(queries, nlist)
        bounds = voronoi_bounds(cell_dist2, cells, self.centroid_gaps)
        # The bound on every cell from rank r on: suffix minimum along the ranking.
        beyond = np.minimum.accumulate(bounds[:, ::-1], axis=1)[:, ::-1]
        dist2 = np.zeros((len(queries), k), np.float32)
        found = np.full((len(queries), k), -1, np.int64)
        todo = np.arange(len(queries))
        for probes in (p for p in self.rounds if p < nlist):
            self.ivf.nprobe = probes
            d, i = self.ivf.search_preassigned(
                queries[todo], k, cells[todo, :probes], cell_dist2[todo, :probes]
            )
            done = (i[:, -1] >= 0) & ~within_bound(beyond[todo, probes], d[:, -1])
            dist2[todo[done]], found[todo[done]] = d[done], i[done]
            todo = todo[~done]
            if not todo.size:
                break
        return dist2, found  # rows still -1 are searched flat by the caller


def faiss_nearest(
    index, queries: np.ndarray, count: int, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(squared distances, rows) of the `count` nearest keys (-1: an approximate index found
    fewer). Only the pruned IVF uses the upper bounds; the other indexes have no use for them."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if isinstance(index, PrunedIVF):
        return index.search(queries, count, upper)
    return index.search(queries, count)


def faiss_kth_rows(
    index, queries: np.ndarray, rows: np.ndarray, k: int, upper: np.ndarray
) -> np.ndarray:
    """k-th neighbour rows; an approximate index that finds fewer than k falls back to the row."""
    kth = faiss_nearest(index, queries, k, upper)[1][:, k - 1]
    return np.where(kth >= 0, kth, rows).astype(np.int32)
