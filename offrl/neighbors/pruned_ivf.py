"""Exact k-NN with a FAISS IVF index, visiting only the cells whose lower bound on the distance to
any of their keys can still beat the k-th distance found; and querying any FAISS index the same
way."""

from __future__ import annotations

import numpy as np

from offrl.neighbors.constraint import BOUND_SLACK_ABSOLUTE, BOUND_SLACK_RELATIVE

# Cells of the first visit, by coarse bound: they usually hold the answer, tightening the rest.
FIRST_CELLS = 8
# Ranked cells per later visit (the last one takes every cell left); each visit drops the cells
# that the k-th distance found so far rules out.
LATER_CELLS = (32,)
# (query, cell) pairs per block of the bounding-box bound, to keep its temporaries small.
BOX_PAIRS = 1 << 16


def exact_ivf_lists(n: int) -> int:
    """Cells of the `faiss-ivf-exact` index: about 1,000 keys each. Smaller cells prune tighter
    but FAISS scans them slower (1M halfcheetah keys: 2,000 and 4,000 cells were slower)."""
    return int(np.clip(n // 1000, 1, 4096))


def training_sample(keys: np.ndarray, size: int) -> np.ndarray:
    """A fixed subsample for k-means training, so the built index is deterministic."""
    if keys.shape[0] <= size:
        return keys
    rows = np.random.default_rng(0).choice(keys.shape[0], size, replace=False)
    return keys[np.sort(rows)]


def within_bound(bounds: np.ndarray, dist2: np.ndarray) -> np.ndarray:
    """Whether a cell at lower bound `bounds` may hold a key at squared distance <= `dist2`."""
    return bounds <= reach(dist2)


def reach(dist2: np.ndarray) -> np.ndarray:
    """The distance `dist2` (squared) stands for, widened by the slack that covers rounding."""
    return np.sqrt(np.maximum(dist2, 0.0)) * (1.0 + BOUND_SLACK_RELATIVE) + BOUND_SLACK_ABSOLUTE


class CellBounds:
    """Per-cell geometry for lower bounds on the distance from a query to any key of a cell: the
    centroid mu_c (Voronoi bisectors), the radius r_c of the keys around it, and their bounding
    box. Read from the index's lists, so nothing beyond the index is cached."""

    def __init__(self, ivf):
        # Bounds in float64 (the box in float32): their rounding stays far below the slack.
        self.centroids = ivf.quantizer.reconstruct_n(0, ivf.nlist).astype(np.float64)
        self.centroid_norms = (self.centroids**2).sum(1)
        gap2 = (
            self.centroid_norms[:, None]
            + self.centroid_norms[None, :]
            - 2.0 * self.centroids @ self.centroids.T
        )
        self.centroid_gaps = np.sqrt(np.maximum(gap2, 0.0))
        dim = self.centroids.shape[1]
        self.radius = np.full(ivf.nlist, -np.inf)  # empty cells: the ball bound rules them out
        self.low = np.full((ivf.nlist, dim), np.inf, np.float32)
        self.high = np.full((ivf.nlist, dim), -np.inf, np.float32)
        for cell in range(ivf.nlist):
            keys = cell_keys(ivf, cell)
            if len(keys):
                offsets = keys.astype(np.float64) - self.centroids[cell]
                self.radius[cell] = np.sqrt((offsets**2).sum(1).max())
                self.low[cell], self.high[cell] = keys.min(0), keys.max(0)

    def coarse(self, queries: np.ndarray) -> np.ndarray:
        """(queries, cells) lower bounds: the larger of the Voronoi and the ball bound.

        A key in cell c is closer to mu_c than to the query's nearest centroid mu_a, so it lies
        beyond their bisector, at least (|q - mu_c|^2 - |q - mu_a|^2) / (2 |mu_c - mu_a|) from the
        query; and within r_c of mu_c, so at least |q - mu_c| - r_c from it.
        """
        q = queries.astype(np.float64)
        dist2 = (q**2).sum(1)[:, None] - 2.0 * q @ self.centroids.T + self.centroid_norms
        rows = np.arange(len(q))
        own = dist2.argmin(axis=1)
        gaps = np.maximum(2.0 * self.centroid_gaps[own], 1e-12)
        bounds = (dist2 - dist2[rows, own, None]) / gaps
        bounds[rows, own] = 0.0
        np.maximum(bounds, np.sqrt(np.maximum(dist2, 0.0)) - self.radius, out=bounds)
        return np.maximum(bounds, 0.0, out=bounds)

    def box(self, queries: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """The distance from each query to the bounding box of its paired cell's keys."""
        out = np.empty(len(cells), np.float64)
        for start in range(0, len(cells), BOX_PAIRS):
            part = slice(start, start + BOX_PAIRS)
            q, c = queries[part], cells[part]
            outside = np.maximum(np.maximum(self.low[c] - q, q - self.high[c]), 0.0)
            out[part] = np.sqrt(np.einsum("ij,ij->i", outside, outside))
        return out


def cell_keys(ivf, cell: int) -> np.ndarray:
    """The keys stored in one IVF-Flat cell, (size, dim) float32."""
    from faiss.contrib.inspect_tools import get_invlist  # FAISS loads on first use only

    return get_invlist(ivf.invlists, cell)[1].view(np.float32).reshape(-1, ivf.d)


class PrunedIVF:
    """Exact k-NN with an IVF index. Each query visits its cells in the order of a lower bound on
    the distance to their keys (the largest of the Voronoi, ball and bounding-box bounds of
    `CellBounds`), and stops once its k-th distance is within the bound of every cell not
    visited; a known upper bound on the k-th distance rules cells out from the start. Queries
    still short of k keys (no upper bound, and fewer keys in their first cells) are searched
    flat."""

    def __init__(self, ivf, flat):
        self.ivf, self.flat = ivf, flat
        self.cells = CellBounds(ivf)

    def search(
        self, queries: np.ndarray, k: int, upper: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(squared distances, rows) of the k nearest keys; `upper` bounds each squared k-th
        distance from above (inf or None: unknown)."""
        if not len(queries):
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        upper = np.full(len(queries), np.inf) if upper is None else np.asarray(upper, np.float64)
        dist2, found, _ = self._search_pruned(queries, k, upper, None)
        return self._flat_where_short(queries, k, dist2, found)

    def search_capped(
        self, queries: np.ndarray, k: int, max_cells: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As `search` without an upper bound, but visiting at most `max_cells` cells per query:
        (squared distances, rows) of the k nearest keys in the cells visited, and `beyond`, a
        lower bound on the distance of every key in the cells not visited (inf where the search
        ended within the cap: its k keys are then the exact k nearest)."""
        upper = np.full(len(queries), np.inf)
        dist2, found, beyond = self._search_pruned(queries, k, upper, max_cells)
        short = found[:, -1] < 0
        beyond[short] = np.inf  # searched flat: exact
        return (*self._flat_where_short(queries, k, dist2, found), beyond)

    def _flat_where_short(self, queries: np.ndarray, k: int, dist2: np.ndarray, found: np.ndarray):
        short = np.flatnonzero(found[:, -1] < 0)
        if short.size:
            dist2[short], found[short] = self.flat.search(queries[short], k)
        return dist2, found

    def _search_pruned(
        self, queries: np.ndarray, k: int, upper: np.ndarray, max_cells: int | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The few cells of lowest coarse bound first, which tighten `upper`; then the rest, or
        up to `max_cells` cells in all, with the lower bound on the distance of what is left."""
        coarse = self.cells.coarse(queries)
        coarse[~within_bound(coarse, upper[:, None])] = np.inf
        first = lowest_cells(coarse, FIRST_CELLS)
        dist2, found = self._visit(queries, k, first)
        # A row's -1 marks cell 0, which is then among its first cells or ruled out anyway.
        np.put_along_axis(coarse, np.maximum(first, 0), np.inf, axis=1)
        upper = np.minimum(upper, kth_dist2(dist2, found))
        coarse[np.isinf(upper)] = np.inf  # still nothing to bound them: left to the flat search
        cells, bounds = self._ranked_cells(queries, coarse, upper)
        depth = cells.shape[1] if max_cells is None else max(max_cells - FIRST_CELLS, 0)
        start = 0
        for width in (*LATER_CELLS, cells.shape[1]):
            width = min(width, depth - start)
            if start >= cells.shape[1] or width <= 0:
                break
            part = slice(start, start + width)
            best = np.minimum(upper, kth_dist2(dist2, found))
            # Ranked cells: those still within reach are a prefix of each row's part.
            live = within_bound(bounds[:, part], best[:, None])
            todo = np.flatnonzero(live[:, 0])
            if todo.size:
                lists = np.where(live[todo], cells[todo, part], -1)
                d, i = self._visit(queries[todo], k, lists[:, : live[todo].sum(1).max()])
                dist2[todo], found[todo] = merge_nearest(dist2[todo], found[todo], d, i, k)
            start += width
        return dist2, found, self._beyond(bounds, start, np.minimum(upper, kth_dist2(dist2, found)))

    @staticmethod
    def _beyond(bounds: np.ndarray, start: int, best: np.ndarray) -> np.ndarray:
        """A lower bound on the distance of every key in the ranked cells from `start` on (their
        bounds are sorted; inf where none is left within reach of `best`), rounding slack off."""
        if start >= bounds.shape[1]:
            return np.full(len(bounds), np.inf)
        left = bounds[:, start]
        shrunk = np.maximum((left - BOUND_SLACK_ABSOLUTE) / (1.0 + BOUND_SLACK_RELATIVE), 0.0)
        return np.where(within_bound(left, best), shrunk, np.inf)

    def _ranked_cells(self, queries: np.ndarray, coarse: np.ndarray, upper: np.ndarray):
        """(cells, bounds), each (queries, depth): every cell whose bound, the bounding box's
        included, is within `upper`, lowest bound first; padded with (-1, inf)."""
        rows, cells = np.nonzero(within_bound(coarse, upper[:, None]))
        bounds = np.maximum(coarse[rows, cells], self.cells.box(queries[rows], cells))
        keep = within_bound(bounds, upper[rows])
        order = np.lexsort((bounds[keep], rows[keep]))
        rows, cells, bounds = rows[keep][order], cells[keep][order], bounds[keep][order]
        counts = np.bincount(rows, minlength=len(queries))
        rank = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
        ranked = np.full((len(queries), counts.max()), -1, np.int64)
        ranked_bounds = np.full(ranked.shape, np.inf)
        ranked[rows, rank], ranked_bounds[rows, rank] = cells, bounds
        return ranked, ranked_bounds

    def _visit(self, queries: np.ndarray, k: int, lists: np.ndarray):
        """The k nearest keys in each query's listed cells (list id -1: none)."""
        self.ivf.nprobe = lists.shape[1]
        return self.ivf.search_preassigned(queries, k, lists, None)


def lowest_cells(bounds: np.ndarray, count: int) -> np.ndarray:
    """Each row's `count` cells of lowest finite bound, lowest first (-1: no more)."""
    count = min(count, bounds.shape[1])
    cells = np.argpartition(bounds, count - 1, axis=1)[:, :count]
    cells = np.take_along_axis(cells, np.take_along_axis(bounds, cells, 1).argsort(1), 1)
    return np.where(np.isfinite(np.take_along_axis(bounds, cells, 1)), cells, -1)


def kth_dist2(dist2: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Each row's k-th squared distance found; inf where fewer than k keys were found."""
    return np.where(found[:, -1] >= 0, dist2[:, -1], np.inf)


def merge_nearest(dist2, found, more_dist2, more_found, k: int):
    """The k nearest of two result lists; on ties the first list's keys come first, as they would
    in one visit of both lists' cells in order."""
    dist2 = np.concatenate([dist2, more_dist2], 1)
    found = np.concatenate([found, more_found], 1)
    order = np.argsort(np.where(found >= 0, dist2, np.inf), axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist2, order, 1), np.take_along_axis(found, order, 1)


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
