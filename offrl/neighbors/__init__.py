"""PRDC's dataset constraint: the k-th nearest (beta * state, action) pair of the whole dataset.

The keys are D = {(beta * s_i, a_i)} over every dataset row (states already normalised); a query
is (beta * s_b, pi(s_b)) for a sampled row b, and its answer is the action of the k-th nearest key
in Euclidean distance, as the official code's KD-tree returns it. Searches, one interface:

- `faiss-flat`: exact, FAISS IndexFlatL2 on the host, entered through `jax.pure_callback`;
- `faiss-ivf-exact`: exact, FAISS IVF cells visited lowest lower bound first (Voronoi, ball and
  bounding-box bounds) until no unvisited cell can hold a closer key (the default on CPU: a
  fraction of flat's cost on structured data);
- `faiss-hnsw`, `faiss-ivf`: approximate FAISS indexes (faster to query, recall below 1);
- `jax`: exact tiled brute force inside the compiled program, no host callback (the default on
  accelerators), of the queries the candidate lists leave open only.

In front of any of them sit certified candidate lists. The query's state part is the dataset state
s_b, so the true neighbour lies within |pi(s_b) - a_b| of the query, and every key whose scaled
state is farther than the current best distance loses. Each row keeps a list of dataset rows near it
in state space and a radius R_b such that every row NOT in the list is at least R_b away in state.
If the k-th best distance among the candidates is <= beta * R_b, no other row can be closer: the
answer is exact, computed in JAX from a few dozen rows. Only the queries that cannot be certified go
to the search backend. Indexes and candidate lists are built once and cached on disk, keyed by a
hash of the keys themselves (which covers the dataset, its normalisation and beta).

Behind the candidate lists, the exact FAISS searches keep a `RowMemory`: each row's m nearest keys
from its last search, which answer the row's later queries exactly while the policy's action there
has moved less than the margin that search left (see `RowMemory`). It lives in the host process
only: it changes which path answers a query, never the answer.

Modules, one job each: `constraint` (the record and the backends' interface), `build` (once per
run), `query` (inside the compiled step), `candidates`, `jax_search`, `faiss_search`,
`pruned_ivf`, `row_memory`, `disk_cache`, `stacking` (several datasets' constraints in one
program) and `faiss_module` (FAISS imported on first use). Their public names are re-exported here.
"""

from offrl.neighbors.build import build_constraint
from offrl.neighbors.candidates import build_blocks, faiss_candidates, state_candidates
from offrl.neighbors.constraint import (
    BOUND_SLACK_ABSOLUTE,
    BOUND_SLACK_RELATIVE,
    EXACT_SEARCHES,
    SEARCHES,
    DatasetConstraint,
    SearchFn,
    resolve_search,
    validate_search,
)
from offrl.neighbors.disk_cache import array_digest, cache_dir
from offrl.neighbors.faiss_search import build_faiss_index, host_search
from offrl.neighbors.jax_search import (
    JAX_QUERY_BLOCK,
    JAX_TILE_ROWS,
    brute_force_kth,
    exact_kth_rows,
    jax_search,
)
from offrl.neighbors.pruned_ivf import (
    PrunedIVF,
    faiss_kth_rows,
    faiss_nearest,
    training_sample,
    within_bound,
)
from offrl.neighbors.query import (
    Neighbourhood,
    certified_candidates,
    constrained_actions,
    gather_neighbourhood,
    neighbour_actions,
)
from offrl.neighbors.row_memory import RowMemory
from offrl.neighbors.stacking import PAD_KEY, stack_constraints

__all__ = [
    "BOUND_SLACK_ABSOLUTE",
    "BOUND_SLACK_RELATIVE",
    "EXACT_SEARCHES",
    "JAX_QUERY_BLOCK",
    "JAX_TILE_ROWS",
    "PAD_KEY",
    "SEARCHES",
    "DatasetConstraint",
    "Neighbourhood",
    "PrunedIVF",
    "RowMemory",
    "SearchFn",
    "array_digest",
    "brute_force_kth",
    "build_blocks",
    "build_constraint",
    "build_faiss_index",
    "cache_dir",
    "certified_candidates",
    "constrained_actions",
    "exact_kth_rows",
    "faiss_candidates",
    "faiss_kth_rows",
    "faiss_nearest",
    "gather_neighbourhood",
    "host_search",
    "jax_search",
    "neighbour_actions",
    "resolve_search",
    "stack_constraints",
    "state_candidates",
    "training_sample",
    "validate_search",
    "within_bound",
]
