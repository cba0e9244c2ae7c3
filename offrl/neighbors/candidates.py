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
from offrl.neighbors.pruned_ivf import training_sample
from offrl.progress import step_bar
from offrl.run_files import atomic_write

# Rows per compiled call of the candidate lists' brute force without FAISS (an accelerator's).
JAX_CANDIDATE_ROWS = 4_096
# IVF cells probed per row when building candidate lists on large data: 16 of sqrt(N) cells keep
# the lists 93% exact and R at 0.84 of the exact radius (median) on 1M halfcheetah rows.
CANDIDATE_PROBES = 16


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


def state_candidates(
    states: np.ndarray, num_candidates: int, *, exact_below: int = 50_000
) -> tuple[np.ndarray, np.ndarray]:
    """For every row: `num_candidates` rows near it in state space, and a radius R such that
    every row outside its list is at least R away (so a certificate built on R is exact).

    Small datasets: exact k-NN, R = the distance of the first row past the list. Large ones: an
    IVF index (exact distances within the probed cells) and R = the smallest of the distance of the
    first probed row past the list and the distance to each unprobed cell. A cell c is the
    Voronoi region of its centroid mu_c, so all its rows lie beyond the bisector of mu_c and the
    query's own centroid mu_a, at distance (|s - mu_c|^2 - |s - mu_a|^2) / (2 |mu_c - mu_a|);
    cells past the ones ranked are bounded by (|s - mu_last| - |s - mu_a|) / 2. Cached on disk by
    the states' hash.
    """
    states = np.ascontiguousarray(states, dtype=np.float32)
    n = len(states)
    k = min(num_candidates, n)
    how = f"probe{CANDIDATE_PROBES}" if faiss_installed() else "jax"
    path = cache_dir() / f"{array_digest(states)}-candidates{k}-{how}.npz"
    if path.exists():
        with np.load(path) as stored:
            return stored["candidates"], stored["radius"]
    with step_bar(f"neighbour candidate lists ({n:,} rows, {k} each)", n, "row") as bar:
        if how == "jax":
            candidates, radius = jax_candidates(states, k, bar.update)
        elif n <= exact_below:
            candidates, radius = exact_candidates(states, k)
            bar.update(n)
        else:
            candidates, radius = ivf_candidates(states, k, build_blocks(n), bar.update)
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
    candidates, radius = np.empty((n, k), np.int64), np.full(n, np.inf, np.float32)
    for start in range(0, n, JAX_CANDIDATE_ROWS):
        stop = min(start + JAX_CANDIDATE_ROWS, n)
        dist2, rows = jax.device_get(exact_nearest(keys, keys[start:stop], wanted))
        candidates[start:stop] = rows[:, :k]
        if k < n:
            radius[start:stop] = np.sqrt(np.maximum(dist2[:, k], 0.0))
        advance(stop - start)
    return candidates, radius


def exact_candidates(states: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, dim = states.shape
    index = faiss_module().IndexFlatL2(dim)
    index.add(states)
    dist2, candidates = index.search(states, min(k + 1, n))
    radius = np.sqrt(np.maximum(dist2[:, k], 0.0)) if k < n else np.full(n, np.inf)
    return candidates[:, :k], radius


def ivf_candidates(
    states: np.ndarray,
    k: int,
    blocks: Sequence[range],
    advance: Callable[[int], None],
    *,
    nprobe: int = CANDIDATE_PROBES,
    ranked: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """`state_candidates` of large data, searched a row range of `blocks` at a time, each told
    to `advance`."""
    n, dim = states.shape
    nlist = int(np.clip(np.sqrt(n), 16, 4096))
    faiss = faiss_module()
    quantizer = faiss.IndexFlatL2(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    index.train(training_sample(states, 64 * nlist))
    index.add(states)
    index.nprobe = nprobe
    centroids = quantizer.reconstruct_n(0, nlist)
    parts = []
    for rows in blocks:
        queries = states[rows.start : rows.stop]
        parts.append(_ivf_block(index, centroids, queries, np.asarray(rows), k, ranked))
        advance(len(rows))
    return np.concatenate([c for c, _ in parts]), np.concatenate([r for _, r in parts])


def _ivf_block(
    index, centroids: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int, ranked: int
) -> tuple[np.ndarray, np.ndarray]:
    """`ivf_candidates` for the dataset rows `rows` (whose states are `queries`)."""
    nlist, nprobe = len(centroids), index.nprobe
    dist2, candidates = index.search(queries, k + 1)
    # Probed rows past the list are at least as far as the first of them (row k + 1).
    last = np.where(candidates[:, k] >= 0, np.sqrt(np.maximum(dist2[:, k], 0.0)), np.inf)
    # An unfilled slot (probed cells hold fewer than k rows) points at the row itself.
    candidates = np.where(candidates[:, :k] >= 0, candidates[:, :k], rows[:, None])

    cell_dist2, cells = index.quantizer.search(queries, min(nprobe + ranked, nlist))
    own = np.sqrt(np.maximum(cell_dist2[:, :1], 0.0))
    unprobed = cells[:, nprobe:]
    gap = np.linalg.norm(centroids[unprobed] - centroids[cells[:, :1]], axis=-1)
    bisector = (cell_dist2[:, nprobe:] - cell_dist2[:, :1]) / np.maximum(2.0 * gap, 1e-12)
    bound = bisector.min(axis=1) if unprobed.shape[1] else np.full(len(rows), np.inf)
    if cells.shape[1] < nlist:
        beyond = (np.sqrt(np.maximum(cell_dist2[:, -1], 0.0)) - own[:, 0]) / 2.0
        bound = np.minimum(bound, beyond)
    return candidates, np.maximum(np.minimum(last, bound), 0.0)
