"""FAISS searches on the host: building (and caching) the indexes, and the search the compiled
step calls through `jax.pure_callback`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from offrl.neighbors.candidates import build_blocks
from offrl.neighbors.constraint import DatasetConstraint, SearchFn
from offrl.neighbors.disk_cache import array_digest, cache_dir
from offrl.neighbors.faiss_module import faiss_module
from offrl.neighbors.pruned_ivf import (
    PrunedIVF,
    exact_ivf_lists,
    faiss_kth_rows,
    training_sample,
)
from offrl.neighbors.row_memory import RowMemory
from offrl.progress import step_bar
from offrl.run_files import atomic_write


def build_faiss_index(keys: np.ndarray, search: str, *, hnsw_m: int, ivf_lists: int):
    """An index over `keys`; HNSW and IVF builds are cached on disk, keyed by the keys' hash."""
    faiss, dim = faiss_module(), keys.shape[1]
    if search in ("faiss-flat", "faiss-ivf-exact"):
        flat = faiss.IndexFlatL2(dim)  # building is a copy: nothing worth caching
        flat.add(keys)
        if search == "faiss-flat":
            return flat
        lists = exact_ivf_lists(keys.shape[0])
        return PrunedIVF(build_faiss_index(keys, "faiss-ivf", hnsw_m=hnsw_m, ivf_lists=lists), flat)
    params = f"m{hnsw_m}" if search == "faiss-hnsw" else f"lists{ivf_lists}"
    path = cache_dir() / f"{array_digest(keys)}-{search}-{params}.faiss"
    if path.exists():
        return faiss.read_index(str(path))
    described = f"neighbour index ({search}, {params}, {len(keys):,} keys)"
    with step_bar(described, len(keys), "key") as bar:
        if search == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m)
            index.hnsw.efConstruction = 2 * hnsw_m
            index.add(keys)  # in one call: HNSW's graph depends on how its inserts are batched
            bar.update(len(keys))
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, min(ivf_lists, keys.shape[0]))
            index.train(training_sample(keys, 64 * index.nlist))
            # Each key joins its cell's list in key order however the adds are batched.
            for rows in build_blocks(len(keys)):
                index.add(keys[rows.start : rows.stop])
                bar.update(len(rows))
    atomic_write(path, lambda tmp: faiss.write_index(index, tmp))
    return index


def host_search(
    index, keys: np.ndarray, state_dim: int, k: int, memory: RowMemory | None
) -> SearchFn:
    """A search that calls FAISS through `jax.pure_callback`, only for the wanted queries, and
    returns the neighbours' actions from the host copy of the keys (the callback touches no device
    array). With a `memory` (exact searches only), queries it can certify skip the search.

    Under the training loop's vmap over seeds, all seeds' queries arrive in one call.
    """
    actions = keys[:, state_dim:]

    def on_host(queries, rows, wanted, upper):
        queries, rows, wanted = np.asarray(queries), np.asarray(rows), np.asarray(wanted)
        nearest = rows.astype(np.int64)  # unwanted queries are answered elsewhere: any row will do
        remembered = np.zeros(rows.shape, bool)
        if wanted.any():
            asked, asked_rows = queries[wanted], rows[wanted]
            if memory is None:
                upper = np.asarray(upper)[wanted]
                nearest[wanted] = faiss_kth_rows(index, asked, asked_rows, k, upper)
            else:
                found, known = memory.recall(asked, asked_rows, k)
                if not known.all():
                    found[~known] = memory.search(index, asked[~known], asked_rows[~known], k)
                nearest[wanted], remembered[wanted] = found, known
        return actions[nearest], remembered

    def search(constraint: DatasetConstraint, queries, rows, wanted, upper):
        shapes = (
            jax.ShapeDtypeStruct((*rows.shape, actions.shape[1]), jnp.float32),
            jax.ShapeDtypeStruct(rows.shape, jnp.bool_),
        )
        return jax.pure_callback(
            on_host, shapes, queries, rows, wanted, upper, vmap_method="expand_dims"
        )

    return search
