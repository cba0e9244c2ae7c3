"""PRDC and its dataset constraint: exact neighbours, certificates, recall, real runs."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, assert_trained_alike

from agents import PRDC, TD3BC
from benchmarks import candidate_lists
from offrl.agent import Context, DatasetSpec
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.fused import init_carry, make_train_chunk
from offrl.neighbors import (
    PrunedIVF,
    build_constraint,
    build_faiss_index,
    cache_dir,
    constrained_actions,
    exact_kth_rows,
    gather_neighbourhood,
    state_candidates,
)
from offrl.neighbors.candidates import faiss_candidates, jax_candidates
from offrl.train import fit

TASK = f"minari/{HOPPER_DATASET_ID}"
SMALL = {"hidden_dims": (64, 64), "batch_size": 64}
STATE_DIM, ACTION_DIM, ROWS, QUERIES = 11, 3, 4000, 256


@pytest.fixture(scope="module")
def table():
    """Random states and actions, and queries at dataset states with arbitrary policy actions."""
    rng = np.random.default_rng(0)
    states = rng.standard_normal((ROWS, STATE_DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, (ROWS, ACTION_DIM)).astype(np.float32)
    rows = rng.integers(0, ROWS, QUERIES)
    policy_actions = rng.uniform(-1, 1, (QUERIES, ACTION_DIM)).astype(np.float32)
    return states, actions, rows, policy_actions


def numpy_kth_action(states, actions, rows, policy_actions, beta, k):
    """The official rule by brute force: k-th smallest of beta^2|s - s_i|^2 + |pi(s) - a_i|^2."""
    keys = np.concatenate([beta * states, actions], axis=1).astype(np.float64)
    queries = np.concatenate([beta * states[rows], policy_actions], axis=1)
    dist = ((queries[:, None, :] - keys[None]) ** 2).sum(-1)
    return actions[np.argsort(dist, axis=1, kind="stable")[:, k - 1]]


@pytest.mark.parametrize("search", ["faiss-ivf-exact", "faiss-flat", "jax"])
@pytest.mark.parametrize("candidates", [0, 16])
@pytest.mark.parametrize("k", [1, 2])
def test_exact_searches_match_numpy_brute_force(table, search, candidates, k):
    states, actions, rows, policy_actions = table
    constraint = build_constraint(
        states, actions, beta=2.0, k=k, search=search, candidates=candidates
    )
    targets, metrics = jax.jit(constrained_actions)(
        constraint, jnp.asarray(rows), jnp.asarray(policy_actions)
    )
    expected = numpy_kth_action(states, actions, rows, policy_actions, 2.0, k)
    np.testing.assert_array_equal(np.asarray(targets), expected)
    if not candidates:
        assert float(metrics["certified_fraction"]) == 0.0


@pytest.mark.parametrize("moved", [0, 40, QUERIES])
def test_jax_search_brute_forces_only_open_queries_exactly(table, moved):
    """Policy actions at the data's own are certified by the candidate lists; `moved` of them
    far off are not: none open (no block runs), 40 (a block, then one shifted back to stay in
    bounds) and all. Every answer is numpy's brute force."""
    states, actions, rows, _ = table
    policy_actions = actions[rows] + np.float32(5.0) * (np.arange(QUERIES) < moved)[:, None]
    constraint = build_constraint(states, actions, beta=2.0, search="jax", candidates=16)
    targets, metrics = jax.jit(constrained_actions)(
        constraint, jnp.asarray(rows), jnp.asarray(policy_actions)
    )
    assert round((1.0 - float(metrics["certified_fraction"])) * QUERIES) == moved
    expected = numpy_kth_action(states, actions, rows, policy_actions, 2.0, 1)
    np.testing.assert_array_equal(np.asarray(targets), expected)


def test_candidates_answer_uncertified_queries_through_the_backend(table):
    """Tiny lists certify few queries; the backend answers the rest, and all stay exact."""
    states, actions, rows, _ = table
    far = np.full((QUERIES, ACTION_DIM), 5.0, np.float32)  # far from every action: no certificate
    constraint = build_constraint(states, actions, beta=0.1, search="faiss-flat", candidates=2)
    targets, metrics = constrained_actions(constraint, jnp.asarray(rows), jnp.asarray(far))
    assert float(metrics["certified_fraction"]) < 0.5
    expected = numpy_kth_action(states, actions, rows, far, 0.1, 1)
    np.testing.assert_array_equal(np.asarray(targets), expected)


@pytest.mark.parametrize("search", ["faiss-ivf-exact", "faiss-flat"])
@pytest.mark.parametrize("k", [1, 2])
def test_row_memory_answers_revisited_rows_exactly(table, search, k):
    """Revisits whose action moved little are answered from the row's last search; far moves
    are searched again. Every answer equals numpy's brute force."""
    states, actions, rows, policy_actions = table
    constraint = build_constraint(
        states, actions, beta=0.1, k=k, search=search, candidates=8, memory=4, ivf_lists=32
    )
    step = jax.jit(constrained_actions)
    rng = np.random.default_rng(5)
    remembered = []
    for move in (0.0, 0.01, 0.01, 1.0):
        policy_actions = policy_actions + move * rng.standard_normal(policy_actions.shape)
        policy_actions = policy_actions.astype(np.float32)
        targets, metrics = step(constraint, jnp.asarray(rows), jnp.asarray(policy_actions))
        expected = numpy_kth_action(states, actions, rows, policy_actions, 0.1, k)
        np.testing.assert_array_equal(np.asarray(targets), expected)
        remembered.append(float(metrics["remembered_fraction"]))
        assert remembered[-1] + float(metrics["certified_fraction"]) <= 1.0
    first, small, smaller, far = remembered
    assert first < 0.05  # one callback recalls before it searches: nothing is known yet
    assert small > 0.3 and smaller > 0.3 and far < small


def test_row_memory_needs_longer_candidate_lists():
    with pytest.raises(ConfigError, match="memory must be 0"):
        PRDC.Config(candidates=16, memory=16)
    with pytest.raises(ConfigError, match="set memory 0 too"):
        PRDC.Config(candidates=0)
    with pytest.raises(ConfigError, match="between k and"):
        PRDC.Config(k=3, memory=2)
    assert PRDC.Config(candidates=0, memory=0).memory == 0


def test_candidate_lists_are_the_exact_nearest_rows_across_many_cells():
    """Large datasets' lists come from FAISS's exact IVF search (20 cells here): each row's k
    nearest rows, and as radius the distance of the next, so no row outside beats it."""
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.standard_normal((40, 500, 5)) * 0.1, axis=1).reshape(-1, 5)
    states = ((walk - walk.mean(0)) / walk.std(0)).astype(np.float32)
    candidates, radius = state_candidates(states, 16)
    assert candidates.shape == (len(states), 16)
    for row in rng.integers(0, len(states), 200):
        dist = np.linalg.norm(states - states[row], axis=1)
        order = np.argsort(dist, kind="stable")
        assert set(candidates[row]) == set(order[:16])
        np.testing.assert_allclose(radius[row], dist[order[16]], rtol=1e-5, atol=1e-5)
        outside = np.ones(len(states), bool)
        outside[candidates[row]] = False
        assert dist[outside].min() >= radius[row] - 1e-5


def test_candidate_lists_built_in_jax_are_the_exact_ones():
    """Where FAISS is missing (an accelerator's host), JAX's brute force builds the lists: the
    same rows as FAISS's exact search, the same radius up to float rounding."""
    rng = np.random.default_rng(2)
    states = rng.standard_normal((3000, 6)).astype(np.float32)
    moved = []
    rows, radius = jax_candidates(states, 16, moved.append)
    exact_rows, exact_radius = faiss_candidates(states, 16, [range(len(states))], lambda _: None)
    np.testing.assert_array_equal(rows, exact_rows)
    np.testing.assert_allclose(radius, exact_radius, rtol=1e-5, atol=1e-5)
    assert sum(moved) == len(states)


def test_a_capped_search_bounds_every_key_it_did_not_reach():
    """Candidate lists visit at most a few cells: the radius (the next key found, or the bound on
    the cells left) stays below every key outside the list, and lists whose search ended within
    the cap are the exact ones."""
    rng = np.random.default_rng(4)
    walk = np.cumsum(rng.standard_normal((40, 1000, 9)) * 0.1, axis=1).reshape(-1, 9)
    keys = ((walk - walk.mean(0)) / walk.std(0)).astype(np.float32)
    flat = build_faiss_index(keys, "faiss-flat", hnsw_m=32, ivf_lists=64)
    ivf = build_faiss_index(keys, "faiss-ivf", hnsw_m=32, ivf_lists=64)
    queries = keys[rng.integers(0, len(keys), 300)]
    queries = queries + 0.3 * rng.standard_normal(queries.shape).astype(np.float32)
    dist2, found, beyond = PrunedIVF(ivf, flat).search_capped(queries, 17, max_cells=9)
    radius = np.minimum(np.sqrt(dist2[:, 16]), beyond)
    cuts = np.isfinite(beyond)
    assert 0.1 < cuts.mean() < 0.9  # the cap cut some searches, not all
    for query, listed, r, cut in zip(queries, found[:, :16], radius, cuts, strict=True):
        dist = np.linalg.norm(keys - query, axis=1)
        outside = np.ones(len(keys), bool)
        outside[listed] = False
        assert dist[outside].min() >= r - 1e-5
        if not cut:
            assert set(listed) == set(np.argsort(dist, kind="stable")[:16])


@pytest.mark.parametrize("k", [1, 3])
def test_pruned_ivf_is_exact_across_many_cells(k):
    """Structured keys over 64 cells: pruning stops early and still returns the exact k-NN."""
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.standard_normal((40, 1000, 9)) * 0.1, axis=1).reshape(-1, 9)
    keys = ((walk - walk.mean(0)) / walk.std(0)).astype(np.float32)
    queries = keys[rng.integers(0, len(keys), 300)]
    queries = queries + 0.3 * rng.standard_normal(queries.shape).astype(np.float32)
    flat = build_faiss_index(keys, "faiss-flat", hnsw_m=32, ivf_lists=64)
    ivf = build_faiss_index(keys, "faiss-ivf", hnsw_m=32, ivf_lists=64)
    dist2 = ((queries[:, None, :] - keys[None]) ** 2).sum(-1)
    exact = dist2.argsort(axis=1)[:, k - 1]
    _, found = PrunedIVF(ivf, flat).search(queries, k)
    np.testing.assert_array_equal(found[:, k - 1], exact)
    # Known upper bounds on the k-th distance: tight (the exact one), loose, or none (inf).
    kth = np.take_along_axis(dist2, exact[:, None], axis=1)[:, 0]
    upper = np.stack([kth, 4.0 * kth + 1.0, np.full_like(kth, np.inf)], 1)[
        np.arange(300), rng.integers(0, 3, 300)
    ]
    _, found = PrunedIVF(ivf, flat).search(queries, k, upper.astype(np.float32))
    np.testing.assert_array_equal(found[:, k - 1], exact)


def policy_keys(layout: str, rng: np.random.Generator) -> np.ndarray:
    """8,000 PRDC-like keys (2 * state, action): random, or states along trajectories with the
    actions of a smooth policy, so that saturated actions lie far from every key."""
    if layout == "random":
        states = rng.standard_normal((8000, 6))
        actions = rng.uniform(-1, 1, (8000, 3))
    else:
        states = np.cumsum(rng.standard_normal((16, 500, 6)) * 0.2, axis=1).reshape(-1, 6)
        states = (states - states.mean(0)) / states.std(0)
        actions = 0.6 * np.tanh(states @ rng.standard_normal((6, 3)) * 0.5)
        actions = actions + 0.02 * rng.standard_normal(actions.shape)
    return np.concatenate([2.0 * states, actions], 1).astype(np.float32)


def policy_queries(keys: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Queries at 200 dataset states with actions near the data's, uniform, or saturated."""
    rows = rng.integers(0, len(keys), 200)
    actions = {
        "near": np.clip(keys[rows, 6:] + 0.05 * rng.standard_normal((200, 3)), -1, 1),
        "uniform": rng.uniform(-1, 1, (200, 3)),
        "saturated": np.sign(rng.standard_normal((200, 3))),
    }[kind]
    return np.concatenate([keys[rows, :6], actions], 1).astype(np.float32)


@pytest.fixture(scope="module", params=["random", "clustered"])
def policy_index(request):
    keys = policy_keys(request.param, np.random.default_rng(5))
    flat = build_faiss_index(keys, "faiss-flat", hnsw_m=32, ivf_lists=64)
    # Small cells (about 30 keys): far queries need many beyond the first visit's.
    ivf = build_faiss_index(keys, "faiss-ivf", hnsw_m=32, ivf_lists=256)
    return keys, flat, PrunedIVF(ivf, flat)


@pytest.mark.parametrize("kind", ["near", "uniform", "saturated"])
@pytest.mark.parametrize("k", [1, 5])
def test_pruned_ivf_equals_flat_search_for_far_actions(policy_index, kind, k):
    """Bound-ordered visits with the ball and box bounds return flat search's k nearest keys,
    with no upper bound, a tight or loose one, or a mix with unknown (inf) ones."""
    keys, flat, pruned = policy_index
    rng = np.random.default_rng(6)
    queries = policy_queries(keys, kind, rng)
    dist2, exact = flat.search(queries, k)
    kth = dist2[:, -1].astype(np.float64)
    mixed = np.stack([kth, 4.0 * kth + 1.0, np.full_like(kth, np.inf)], 1)[
        np.arange(len(kth)), rng.integers(0, 3, len(kth))
    ]
    for upper in (None, kth, 4.0 * kth + 1.0, mixed):
        found_dist2, found = pruned.search(queries, k, upper)
        np.testing.assert_array_equal(found, exact)
        np.testing.assert_allclose(found_dist2, dist2, rtol=1e-5, atol=1e-5)
    assert pruned.search(queries[:0], k)[1].shape == (0, k)


def test_cell_bounds_are_lower_bounds(policy_index):
    """No key of a cell lies closer to a query than its coarse or box bound says."""
    keys, _, pruned = policy_index
    rng = np.random.default_rng(7)
    queries = np.concatenate([policy_queries(keys, kind, rng) for kind in ("near", "saturated")])
    _, assigned = pruned.ivf.quantizer.search(keys, 1)
    dist = np.sqrt(((queries[:, None, :].astype(np.float64) - keys[None]) ** 2).sum(-1))
    nearest_in_cell = np.full((len(queries), pruned.ivf.nlist), np.inf)
    for cell in range(pruned.ivf.nlist):
        members = assigned[:, 0] == cell
        if members.any():
            nearest_in_cell[:, cell] = dist[:, members].min(1)
    coarse = pruned.cells.coarse(queries)
    rows, cells = np.nonzero(np.ones_like(coarse, bool))
    box = pruned.cells.box(queries[rows], cells).reshape(coarse.shape)
    assert (coarse <= nearest_in_cell + 1e-4).all() and (box <= nearest_in_cell + 1e-4).all()
    assert (np.maximum(coarse, box) > 0).mean() > 0.5  # and they do rule cells out


@pytest.mark.parametrize("search", ["faiss-hnsw", "faiss-ivf"])
def test_approximate_searches_have_high_measured_recall(table, search):
    states, actions, rows, policy_actions = table
    constraint = build_constraint(
        states, actions, beta=2.0, search=search, candidates=0, ivf_lists=64, ivf_nprobe=8
    )
    queries = constraint.keys[rows, :STATE_DIM]
    queries = jnp.concatenate([queries, jnp.asarray(policy_actions)], axis=1)
    exact = actions[np.asarray(exact_kth_rows(constraint.keys, queries))]
    wanted, unbounded = jnp.ones(QUERIES, bool), jnp.full(QUERIES, jnp.inf)
    found, remembered = constraint.search(constraint, queries, jnp.asarray(rows), wanted, unbounded)
    recall = (np.asarray(found) == exact).all(axis=1).mean()  # random actions: one row each
    assert 0.9 <= recall <= 1.0, f"{search} recall@1 = {recall}"
    assert not np.asarray(remembered).any()  # an approximate search keeps no row memory


def test_built_indexes_are_cached_by_the_keys(table):
    states, actions, _, _ = table
    build_constraint(states, actions, beta=3.0, search="faiss-hnsw", candidates=8)
    files = sorted(p.name for p in cache_dir().iterdir())
    build_constraint(states, actions, beta=3.0, search="faiss-hnsw", candidates=8)
    assert sorted(p.name for p in cache_dir().iterdir()) == files
    build_constraint(states, actions, beta=4.0, search="faiss-hnsw", candidates=8)
    assert len(list(cache_dir().iterdir())) == len(files) + 1  # new beta: new index, same lists


def test_regulariser_targets_are_constants(table):
    states, actions, rows, policy_actions = table
    constraint = build_constraint(states, actions, beta=2.0, search="jax")

    def total(policy_actions):
        return constrained_actions(constraint, jnp.asarray(rows), policy_actions)[0].sum()

    gradient = jax.grad(total)(jnp.asarray(policy_actions))
    assert not np.asarray(gradient).any()


def random_batch(rows: np.ndarray, states, actions) -> Transitions:
    rng = np.random.default_rng(2)
    return Transitions(
        observations=jnp.asarray(states[rows]),
        actions=jnp.asarray(actions[rows]),
        rewards=jnp.asarray(rng.standard_normal(len(rows)), jnp.float32),
        next_observations=jnp.asarray(states[(rows + 1) % len(states)]),
        dones=jnp.zeros(len(rows), jnp.float32),
    )


def test_actor_step_moves_only_the_actor_and_pulls_toward_the_neighbour(table):
    states, actions, rows, _ = table
    config = PRDC.Config(batch_size=QUERIES, search="faiss-flat")
    constraint = build_constraint(states, actions, beta=config.beta, search="faiss-flat")
    state = PRDC.init(jax.random.PRNGKey(0), DatasetSpec(STATE_DIM, ACTION_DIM), config)
    batch = random_batch(rows, states, actions)
    hood = gather_neighbourhood(constraint, jnp.asarray(rows))
    new, metrics = jax.jit(PRDC.update_actor)(state, batch, constraint, hood)
    assert jax.tree.all(jax.tree.map(jnp.array_equal, new.critic.params, state.critic.params))
    assert not jax.tree.all(jax.tree.map(jnp.array_equal, new.actor.params, state.actor.params))

    policy_actions = PRDC.act(state, batch.observations)
    neighbours = numpy_kth_action(states, actions, rows, np.asarray(policy_actions), config.beta, 1)
    bc = float(((np.asarray(policy_actions) - neighbours) ** 2).mean())
    assert float(metrics["bc_loss"]) == pytest.approx(bc, rel=1e-5)


def test_prdc_differs_from_td3bc_only_in_the_bc_target(table):
    """With beta huge the nearest pair is the sampled row itself: PRDC's step is TD3+BC's."""
    states, actions, rows, _ = table
    unique = np.unique(rows)
    config = PRDC.Config(batch_size=len(unique), beta=1e4)
    constraint = build_constraint(states, actions, beta=1e4, search="jax")
    spec = DatasetSpec(STATE_DIM, ACTION_DIM)
    prdc_state = PRDC.init(jax.random.PRNGKey(0), spec, config)
    td3bc_state = TD3BC.init(jax.random.PRNGKey(0), spec, TD3BC.Config(batch_size=len(unique)))
    batch = random_batch(unique, states, actions)
    start = prdc_state.actor.params
    for step in range(2):
        key = jax.random.PRNGKey(step)
        rows = jnp.asarray(unique)
        prdc_state, _ = PRDC.update(prdc_state, batch, key, Context(rows, constraint))
        td3bc_state, _ = TD3BC.update(td3bc_state, batch, key, Context(rows))
    assert_trained_alike(prdc_state.actor.params, td3bc_state.actor.params, start)


def table_transitions(states, actions) -> Transitions:
    """The table as a dataset: each row's next state is the next row's."""
    return random_batch(np.arange(len(states)), states, actions)


def primitives(jaxpr) -> set[str]:
    """Every primitive of a jaxpr, sub-jaxprs (scan, cond, while bodies) included."""
    names = set()
    for equation in jaxpr.eqns:
        names.add(equation.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(equation.params):
            names |= primitives(sub)
    return names


def test_jax_search_trains_inside_the_scan_as_faiss_does(table):
    """With the `jax` search the compiled chunk holds no host callback (FAISS's enters through
    one), and trains the parameters the exact FAISS search does."""
    states, actions, _, _ = table
    data = table_transitions(states, actions)
    spec = DatasetSpec(STATE_DIM, ACTION_DIM)
    trained, callbacks = {}, {}
    for search in ("jax", "faiss-flat"):
        config = PRDC.Config(**SMALL, search=search, memory=0)
        carry = init_carry(PRDC, spec, config, [0, 1])
        prepared = PRDC.prepare(data, config)
        chunk = make_train_chunk(PRDC, carry, 40, config.batch_size)
        jaxpr = chunk.trace(carry, data, prepared).jaxpr.jaxpr
        callbacks[search] = {name for name in primitives(jaxpr) if "callback" in name}
        trained[search] = chunk(carry, data, prepared)
    assert callbacks == {"jax": set(), "faiss-flat": {"pure_callback"}}
    start = init_carry(PRDC, spec, PRDC.Config(**SMALL), [0, 1])
    assert_trained_alike(trained["jax"][0], trained["faiss-flat"][0], start, share=1e-5)
    for name in ("bc_loss", "critic_loss", "certified_fraction"):
        np.testing.assert_allclose(
            trained["jax"][1][name], trained["faiss-flat"][1][name], rtol=1e-5
        )


WITHOUT_FAISS = """
import sys
sys.modules["faiss"] = None  # import faiss now raises ImportError, as where it is not installed
import numpy as np
from agents import PRDC, TD3BC
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.train import fit

rng = np.random.default_rng(0)
data = Transitions(
    observations=rng.standard_normal((500, 4), dtype=np.float32),
    actions=rng.uniform(-1, 1, (500, 2)).astype(np.float32),
    rewards=rng.standard_normal(500, dtype=np.float32),
    next_observations=rng.standard_normal((500, 4), dtype=np.float32),
    dones=np.zeros(500, np.float32),
)
small = {"hidden_dims": (32, 32), "batch_size": 32}
fit(TD3BC, data, TD3BC.Config(**small), steps=10, eval_every=10, progress=False)
for candidates in (0, 8):  # candidate lists without FAISS: built by brute force in JAX
    jax_only = PRDC.Config(**small, search="jax", candidates=candidates, memory=0)
    fit(PRDC, data, jax_only, steps=10, eval_every=10, progress=False)
try:
    fit(PRDC, data, PRDC.Config(**small, search="faiss-flat"), steps=10, progress=False)
except ConfigError as error:
    print(error)
"""


def test_faiss_is_needed_only_by_a_faiss_search():
    """Without FAISS: the agents import, TD3+BC and PRDC's `jax` search (with and without
    candidate lists) train, and a FAISS search is one error that says what to install."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_FAISS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pip install faiss-cpu" in done.stdout


def test_bad_search_settings_are_config_errors():
    with pytest.raises(ConfigError, match="search must be one of"):
        PRDC.Config(search="kdtree")
    with pytest.raises(ConfigError, match=r"k .* must be >= 1"):
        PRDC.Config(k=0)


# --- real runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(hopper_dataset):
    return load_task(TASK)


def run(loaded, out_dir, steps, seeds=(0, 1), **config):
    return fit(
        PRDC,
        loaded.transitions,
        PRDC.Config(**SMALL, **config),
        seeds=list(seeds),
        steps=steps,
        eval_every=50,
        eval_episodes=2,
        task=loaded.task,
        out_dir=out_dir,
        progress=False,
    )


def test_a_short_real_run_two_seeds_in_one_program(loaded, tmp_path):
    result = run(loaded, tmp_path / "run", 100, search="faiss-flat")
    records = [
        json.loads(line) for line in (tmp_path / "run/records.jsonl").read_text().splitlines()
    ]
    assert [(r["seed"], r["step"]) for r in records] == [(0, 50), (1, 50), (0, 100), (1, 100)]
    assert all(np.isfinite(r["return"]) and np.isfinite(r["losses"]["bc_loss"]) for r in records)
    assert all(0.0 <= r["losses"]["certified_fraction"] <= 1.0 for r in records)
    assert all(0.0 <= r["losses"]["remembered_fraction"] <= 1.0 for r in records)
    alone = run(loaded, None, 100, seeds=(0,), search="faiss-flat")
    spec = DatasetSpec(loaded.transitions.obs_dim, loaded.transitions.action_dim)
    start = init_carry(PRDC, spec, PRDC.Config(**SMALL), [0]).agent.actor.params
    first_seed = jax.tree.map(lambda leaf: leaf[:1], result.carry.agent.actor.params)
    assert_trained_alike(first_seed, alone.carry.agent.actor.params, start)


def test_resume_reuses_the_cached_index(loaded, tmp_path):
    uninterrupted = run(loaded, tmp_path / "whole", 150, search="faiss-hnsw")
    cached = {p: p.stat().st_mtime_ns for p in cache_dir().iterdir()}
    run(loaded, tmp_path / "parts", 100, search="faiss-hnsw")
    resumed = run(loaded, tmp_path / "parts", 150, search="faiss-hnsw")
    assert {p: p.stat().st_mtime_ns for p in cache_dir().iterdir()} == cached
    assert [r["return"] for r in resumed.records] == [
        r["return"] for r in uninterrupted.records if r["step"] == 150
    ]


def test_resume_with_row_memory_equals_uninterrupted(loaded, tmp_path):
    """The memory is lost on resume; it changes which path answers a query, never the answer."""
    uninterrupted = run(loaded, tmp_path / "whole", 150, search="faiss-ivf-exact")
    run(loaded, tmp_path / "parts", 100, search="faiss-ivf-exact")
    resumed = run(loaded, tmp_path / "parts", 150, search="faiss-ivf-exact")
    assert [r["return"] for r in resumed.records] == [
        r["return"] for r in uninterrupted.records if r["step"] == 150
    ]


def test_cli_trains_prdc_with_a_chosen_search(hopper_dataset, tmp_path):
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "offrl.cli", "train", "--agent", "prdc", "--task", TASK]
    command += ["--steps", "50", "--eval-every", "50", "--eval-episodes", "1", "--no-progress"]
    command += ["--search", "jax", "--beta", "2.5", "--hidden-dims", "32", "32", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["search"] == "jax" and manifest["config"]["beta"] == 2.5


def test_the_candidate_lists_benchmark_checks_every_cap_against_the_exact_radius(
    hopper_dataset, capsys
):
    assert candidate_lists.main(["--task", TASK, "--rows", "300", "--caps", "1,0"]) == 0
    printed = capsys.readouterr().out
    assert "cap    1:" in printed and "cap none:" in printed and "radius / exact median" in printed
