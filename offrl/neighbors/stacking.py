"""Several datasets' constraints stacked for one program over the datasets (`offrl.grouped`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from offrl.neighbors.constraint import DatasetConstraint
from offrl.neighbors.jax_search import jax_search

# A padding row's key: its squared distance to any query (about 1e37) loses to every real key's.
PAD_KEY = 1e18


def stack_constraints(constraints: Sequence[DatasetConstraint]) -> DatasetConstraint | None:
    """The constraints on a leading dataset axis, padded to the longest (padding keys far from
    every query, so no search returns them; no row's candidate list names them); None when they
    cannot share a program: only the in-program `jax` search can, a host index serves one
    dataset."""
    first = constraints[0]
    shared = (first.state_dim, first.k, first.keys.shape[1], first.candidates.shape[1])
    if any(
        c.search is not jax_search
        or (c.state_dim, c.k, c.keys.shape[1], c.candidates.shape[1]) != shared
        for c in constraints
    ):
        return None
    longest = max(c.keys.shape[0] for c in constraints)

    def padded(arrays, value):
        out = np.full((len(arrays), longest, *arrays[0].shape[1:]), value, arrays[0].dtype)
        for index, array in enumerate(arrays):
            out[index, : len(array)] = np.asarray(array)
        return jnp.asarray(out)

    return DatasetConstraint(
        keys=padded([c.keys for c in constraints], PAD_KEY),
        candidates=padded([c.candidates for c in constraints], 0),
        radius=padded([c.radius for c in constraints], 0.0),
        state_dim=first.state_dim,
        k=first.k,
        search=jax_search,
    )
