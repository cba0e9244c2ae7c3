"""Exact k-th neighbours by tiled brute force inside the compiled program, no host callback (the
default search on accelerators): only the queries the certified candidate lists left open."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from offrl.neighbors.constraint import DatasetConstraint

JAX_TILE_ROWS = 65_536  # brute-force tile: a (batch, tile) distance block stays a few tens of MB
# Open queries searched per pass over the keys: most batches leave fewer after the candidate lists.
JAX_QUERY_BLOCK = 32


def brute_force_nearest(keys: jax.Array, queries: jax.Array, k: int, tile: int = JAX_TILE_ROWS):
    """(squared distances, rows) of the k nearest keys, nearest first, exact: |q|^2 - 2 q.K^T +
    |K|^2 over tiles, running top-k."""
    n = keys.shape[0]
    tile = min(tile, n)
    num_tiles = -(-n // tile)
    query_norms = (queries**2).sum(-1, keepdims=True)

    def scan_tile(best, t):
        # The last tile is shifted back to stay in bounds; rows before t * tile were already seen.
        start = jnp.minimum(t * tile, n - tile)
        block = jax.lax.dynamic_slice_in_dim(keys, start, tile)
        rows = start + jnp.arange(tile)
        # HIGHEST: accelerators would otherwise round float32 dots (TF32) and misrank neighbours.
        products = jnp.matmul(queries, block.T, precision=jax.lax.Precision.HIGHEST)
        dist = query_norms - 2.0 * products + (block**2).sum(-1)
        dist = jnp.where(rows >= t * tile, dist, jnp.inf)
        all_dist = jnp.concatenate([best[0], dist], axis=1)
        all_rows = jnp.concatenate([best[1], jnp.broadcast_to(rows, dist.shape)], axis=1)
        neg, pos = jax.lax.top_k(-all_dist, k)
        return (-neg, jnp.take_along_axis(all_rows, pos, axis=1)), None

    init = (
        jnp.full((queries.shape[0], k), jnp.inf, queries.dtype),
        jnp.zeros((queries.shape[0], k), jnp.int32),
    )
    (dist, rows), _ = jax.lax.scan(scan_tile, init, jnp.arange(num_tiles))
    return dist, rows


def brute_force_kth(keys: jax.Array, queries: jax.Array, k: int) -> jax.Array:
    """Rows of the k-th nearest keys, exact."""
    return brute_force_nearest(keys, queries, k)[1][:, k - 1]


def jax_search(
    constraint: DatasetConstraint, queries, rows, wanted, upper
) -> tuple[jax.Array, jax.Array]:
    """Brute force of the `wanted` queries only, in blocks of `JAX_QUERY_BLOCK` (all queries in one
    block when there are no candidate lists, which leave every query wanted): the answers of the
    others are discarded by the caller. Under vmap, blocks run until every member's are done."""
    size = queries.shape[0]
    block = min(JAX_QUERY_BLOCK if constraint.candidates.shape[1] else size, size)
    open_first = jnp.argsort(~wanted, stable=True)
    open_count = wanted.sum()

    def search_block(state):
        done, nearest = state
        # The last block is shifted back to stay in bounds; searching a query twice is harmless.
        start = jnp.minimum(done, size - block)
        picked = jax.lax.dynamic_slice_in_dim(open_first, start, block)
        found = brute_force_kth(constraint.keys, queries[picked], constraint.k)
        return done + block, nearest.at[picked].set(found)

    _, nearest = jax.lax.while_loop(
        lambda state: state[0] < open_count, search_block, (jnp.zeros((), jnp.int32), rows)
    )
    return constraint.keys[nearest, constraint.state_dim :], jnp.zeros(rows.shape, bool)


@functools.partial(jax.jit, static_argnames="k")
def exact_kth_rows(keys: jax.Array, queries: jax.Array, k: int = 1) -> jax.Array:
    """Exact k-th neighbour rows for many queries at once (recall measurements, tests)."""
    return brute_force_kth(keys, queries, k)


@functools.partial(jax.jit, static_argnames="k")
def exact_nearest(keys: jax.Array, queries: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """`brute_force_nearest` for many queries at once (candidate lists without FAISS)."""
    return brute_force_nearest(keys, queries, k)
