"""The dataset constraint the compiled actor step searches, the search backends' names, and the
interface every backend implements."""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax

from offrl.agent import require

SEARCHES = ("auto", "faiss-ivf-exact", "faiss-flat", "faiss-hnsw", "faiss-ivf", "jax")
EXACT_SEARCHES = ("faiss-ivf-exact", "faiss-flat", "jax")
# Query function: (constraint, queries (B, D), rows (B,), wanted (B,) bool, upper (B,)) -> (the
# k-th neighbours' actions (B, A), remembered (B,) bool: answered by the host's `RowMemory`);
# `upper` bounds each squared k-th distance (inf: unknown).
SearchFn = Callable[..., tuple[jax.Array, jax.Array]]
# Slack on the pruning bounds, so float32 rounding in them can never skip a cell that matters.
BOUND_SLACK_RELATIVE, BOUND_SLACK_ABSOLUTE = 1e-4, 1e-3


@flax.struct.dataclass
class DatasetConstraint:
    """Everything the compiled actor step needs to find the constrained actions."""

    keys: jax.Array
    """(N, state_dim + action_dim): beta * normalised state, then action."""
    candidates: jax.Array
    """(N, K) int32 rows near each row in state space (K = 0: no certified shortcut)."""
    radius: jax.Array
    """(N,) beta * (a lower bound on the state distance of every row outside the list)."""
    state_dim: int = flax.struct.field(pytree_node=False)
    k: int = flax.struct.field(pytree_node=False)
    search: SearchFn = flax.struct.field(pytree_node=False)


def validate_search(search: str, k: int, candidates: int, memory: int = 0) -> None:
    require(search in SEARCHES, f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    require(k >= 1, f"k (the k-th neighbour is the target) must be >= 1, got {k}")
    require(candidates >= 0, f"candidates must be >= 0 (0 turns them off), got {candidates}")
    require(
        memory == 0 or k <= memory < candidates,
        f"memory must be 0 (off) or between k and candidates - 1 (its searches are bounded by "
        f"the candidate list), got memory {memory} with k {k} and candidates {candidates}; "
        "with fewer candidates (or none) set memory 0 too",
    )


def resolve_search(search: str) -> str:
    """`auto`: exact pruned IVF on the host on CPU, exact brute force in JAX on accelerators."""
    if search != "auto":
        return search
    return "faiss-ivf-exact" if jax.default_backend() == "cpu" else "jax"
