"""Certified candidate lists: for every dataset row, the rows near it in state space and a radius
beyond which every other row lies. Built on the host once, cached on disk."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from offrl.neighbors.disk_cache import array_digest, cache_dir
from offrl.neighbors.faiss_module import faiss_installed, faiss_module
from offrl.neighbors.jax_search import exact_nearest
from offrl.neighbors.pruned_ivf import PrunedIVF, exact_ivf_lists, training_sample
from offrl.progress import step_bar
from offrl.run_files import atomic_write

# Rows per compiled call of the candidate lists' brute force without FAISS (an accelerator's).
JAX_CANDIDATE_ROWS = 4_096
# Cells a row's list visits at most (of about 1,000 rows each): the exact search ends well within
# it on 1M halfcheetah rows (17 dims) but not on AntMaze's (29 dims), where it caps the cost.
CANDIDATE_CELLS = 128


def build_blocks(n: int) -> list[range]:
    """The row ranges that building searches (and adds) one FAISS call at a time, for the progress
    bars. FAISS's flat search computes distances with BLAS for calls of at least
    `distance_compute_blas_threshold` queries, `distance_compute_blas_query_bs` at a time, and
    directly below that, rounding differently: ranges of whole query blocks, none under the
    threshold unless it is the only one, give each row the distances of one call over all rows."""
    faiss = faiss_module()
    threshold = faiss.cvar.distance_compute_blas_threshold
    query_block = faiss.cvar.distance_compute_blas_query_bs
    size = -(-max(threshold, 16 * query_block) // query_block) * query_block
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < threshold:
        starts.pop()
    return [range(a, b) for a, b in zip(starts, [*starts[1:], n], strict=True)]


def state_candidates(states: np.ndarray, num_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """For every row: `num_candidates` rows near it in state space, and a radius R such that every
    row outside its list is at least R away (so a certificate built on R is exact). The lists are
    the exact nearest rows, R the distance of the next one, except where FAISS's search reached
    its cap of `CANDIDATE_CELLS` cells (high-dimensional states): R is then bounded by the cells
    left. The larger R, the more of PRDC's queries are certified without a search (docs/speed.md).
    Cached on disk by the states' hash."""
    states = np.ascontiguousarray(states, dtype=np.float32)
    n = len(states)
    k = min(num_candidates, n)
    how = f"cells{CANDIDATE_CELLS}" if faiss_installed() else "jax"
    path = cache_dir() / f"{array_digest(states)}-candidates{k}-{how}.npz"
    if path.exists():
        with np.load(path) as stored:
            return stored["candidates"], stored["radius"]
    with step_bar(f"neighbour candidate lists ({n:,} rows, {k} each)", n, "row") as bar:
        if how == "jax":
            candidates, radius = jax_candidates(states, k, bar.update)
        else:
            candidates, radius = faiss_candidates(states, k, build_blocks(n), bar.update)
    candidates = candidates.astype(np.int32)
    radius = radius.astype(np.float32)
    atomic_write(path, lambda tmp: _save_npz(tmp, candidates=candidates, radius=radius))
    return candidates, radius


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def jax_candidates(
    states: np.ndarray, k: int, advance: Callable[[int], None]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact candidate lists by brute force in JAX, where FAISS is not installed (PRDC on an
    accelerator needs no FAISS): each row's k nearest rows and the distance of the next one."""
    n = len(states)
    keys = jnp.asarray(states)
    wanted = min(k + 1, n)

    def nearest(rows: range):
        dist2, found = jax.device_get(exact_nearest(keys, keys[rows.start : rows.stop], wanted))
        return dist2, found, np.inf

    blocks = [range(a, min(a + JAX_CANDIDATE_ROWS, n)) for a in range(0, n, JAX_CANDIDATE_ROWS)]
    return fill_lists(n, k, blocks, nearest, advance)


def state_search(states: np.ndarray) -> PrunedIVF:
    """FAISS's exact IVF search over the states, about 1,000 rows a cell."""
    n, dim = states.shape
    faiss = faiss_module()
    flat = faiss.IndexFlatL2(dim)
    flat.add(states)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, exact_ivf_lists(n))
    ivf.train(training_sample(states, 64 * ivf.nlist))
    ivf.add(states)
    return PrunedIVF(ivf, flat)


def faiss_candidates(
    states: np.ndarray, k: int, blocks: Sequence[range], advance: Callable[[int], None]
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate lists by `state_search`, at most `CANDIDATE_CELLS` cells a row: each row's k
    nearest rows of the cells visited, and as radius the distance of the next one or, where the
    cap cut the search short, the bound on the cells left if smaller. A row range of `blocks` at
    a time, each told to `advance`."""
    n = len(states)
    search = state_search(states)
    wanted = min(k + 1, n)

    def nearest(rows: range):
        return search.search_capped(states[rows.start : rows.stop], wanted, CANDIDATE_CELLS)

    return fill_lists(n, k, blocks, nearest, advance)


def fill_lists(
    n: int,
    k: int,
    blocks: Sequence[range],
    nearest: Callable[[range], tuple],
    advance: Callable[[int], None],
) -> tuple[np.ndarray, np.ndarray]:
    """Lists and radii of n rows, a range of `blocks` at a time: `nearest(rows)` gives the rows'
    (squared distances, rows) of their k + 1 nearest found and a lower bound on the distance of
    any row it did not look at (inf: it looked at all); the radius is the nearer of the two."""
    candidates, radius = np.empty((n, k), np.int64), np.full(n, np.inf, np.float32)
    for rows in blocks:
        dist2, found, beyond = nearest(rows)
        part = slice(rows.start, rows.stop)
        candidates[part] = found[:, :k]
        if k < n:
            radius[part] = np.minimum(np.sqrt(np.maximum(dist2[:, k], 0.0)), beyond)
        advance(len(rows))
    return candidates, radius
