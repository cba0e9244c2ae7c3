"""Building the dataset constraint: keys, candidate lists and the search backend, once per run."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from offrl.neighbors.candidates import state_candidates
from offrl.neighbors.constraint import (
    EXACT_SEARCHES,
    DatasetConstraint,
    SearchFn,
    resolve_search,
    validate_search,
)
from offrl.neighbors.faiss_search import build_faiss_index, host_search
from offrl.neighbors.jax_search import jax_search
from offrl.neighbors.row_memory import RowMemory


def build_constraint(
    states: np.ndarray,
    actions: np.ndarray,
    *,
    beta: float,
    k: int = 1,
    search: str = "auto",
    candidates: int = 32,
    hnsw_m: int = 32,
    hnsw_ef_search: int = 64,
    ivf_lists: int = 4096,
    ivf_nprobe: int = 16,
    memory: int = 0,
) -> DatasetConstraint:
    """The constraint over normalised `states` and `actions` (host arrays, a row per transition).
    `memory` keys per row are kept by the exact FAISS searches (see `RowMemory`; 0 = off)."""
    validate_search(search, k, candidates, memory)
    states = np.asarray(states, dtype=np.float32)
    keys = np.ascontiguousarray(
        np.concatenate([beta * states, np.asarray(actions, dtype=np.float32)], axis=1)
    )
    if candidates:
        rows, radius = state_candidates(states, max(candidates, k))
        radius = beta * radius
    else:
        rows, radius = np.zeros((len(keys), 0), np.int32), np.zeros(len(keys), np.float32)
    search = resolve_search(search)
    if search == "jax":
        search_fn: SearchFn = jax_search
    else:
        index = build_faiss_index(keys, search, hnsw_m=hnsw_m, ivf_lists=ivf_lists)
        if search == "faiss-hnsw":
            index.hnsw.efSearch = max(hnsw_ef_search, k)
        elif search == "faiss-ivf":
            index.nprobe = ivf_nprobe
        exact = search in EXACT_SEARCHES
        kept = RowMemory(keys, states.shape[1], rows, memory) if memory and exact else None
        search_fn = host_search(index, keys, states.shape[1], k, kept)
    return DatasetConstraint(
        keys=jnp.asarray(keys),
        candidates=jnp.asarray(rows),
        radius=jnp.asarray(radius),
        state_dim=states.shape[1],
        k=k,
        search=search_fn,
    )
