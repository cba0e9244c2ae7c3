"""The embedded datasets: every level at a few thousand transitions from real shipped policies.

The policies are the tiny SAC run of test_ship.py, shipped (below the expert bar, for tests)
into a temp folder named by $OFFRL_POLICIES_DIR; datasets go to a private Minari cache.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil

import gymnasium as gym
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_ship import TINY_EPISODES, tiny_policies, tiny_replay_run, tiny_run

from offrl.behavior import manifest, measure, ship
from offrl.cli import main
from offrl.data import commands, generate, minari_io, recipes, rollouts
from offrl.data.registry import known_task_names, load_task, resolve_task
from offrl.errors import DatasetError, UnknownTaskError
from offrl.nets import TanhGaussianActor

SIZE = 2000
LEVELS = generate.LEVELS


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> dict[str, generate.MakeInfo]:
    """Every hopper level made once at SIZE transitions (seed 0) into a private cache."""
    policies = tiny_policies(tmp_path_factory.getbasetemp())
    cache = tmp_path_factory.mktemp("generated-minari")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(manifest.POLICIES_ENV_VAR, str(policies))
        patch.setenv("MINARI_DATASETS_PATH", str(cache))
        patch.setattr(recipes, "pointmaze_recipes", dict)  # mazes are test_maze.py's
        yield {
            level: generate.make_dataset(generate.dataset_id("hopper", level), 0, SIZE)
            for level in LEVELS
        }


def entry() -> manifest.EnvPolicies:
    return manifest.read_policy_manifest().envs["hopper"]


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_loads_with_its_recorded_checksum(suite, level):
    made = suite[level]
    loaded = load_task(made.dataset_id)
    assert loaded.task.source == "offrl" and loaded.task.env_spec.id == "Hopper-v5"
    assert loaded.transitions.size == SIZE == made.transitions
    assert loaded.checksum == made.checksum
    metadata = minari_io.read_minari_info(made.dataset_id).metadata
    assert metadata[minari_io.CHECKSUM_KEY] == made.checksum
    assert metadata["algorithm_name"] == f"offrl-generate/{level}"
    # Reference scores: the random policy's and the expert's measured returns.
    refs = (entry().random.return_mean, entry().expert.return_mean)
    assert (loaded.task.ref_min_score, loaded.task.ref_max_score) == pytest.approx(refs)
    actions = np.asarray(loaded.transitions.actions)
    assert actions.shape == (SIZE, 3) and np.abs(actions).max() <= 1.0
    assert np.isfinite(np.asarray(loaded.transitions.observations)).all()


def test_random_level_is_uniform(suite):
    actions = np.asarray(load_task(suite["random"].dataset_id).transitions.actions)
    assert abs(actions.mean()) < 0.05 and actions.std() == pytest.approx(1 / np.sqrt(3), rel=0.05)


def test_medium_and_expert_sample_the_stochastic_policy(suite):
    """Actions are SAC samples (D4RL's distr.sample()), not the deterministic tanh(mean)."""
    data = load_task(suite["expert"].dataset_id).transitions
    params = manifest.load_actor(entry(), entry().expert)
    observations = np.asarray(data.observations)
    mean_actions = measure.deterministic_actions(
        manifest.actor_module(entry()), params, observations
    )
    assert not np.allclose(np.asarray(data.actions), np.asarray(mean_actions), atol=1e-3)


def test_medium_expert_is_medium_then_expert_of_the_same_seed(suite):
    half = SIZE // 2
    parts = [
        generate.make_dataset(generate.dataset_id("hopper", level), 0, half, overwrite=True)
        for level in ("medium", "expert")
    ]
    both = load_task(suite["medium-expert"].dataset_id).transitions
    medium, expert = (load_task(p.dataset_id).transitions for p in parts)
    for name in ("observations", "actions", "rewards", "next_observations", "dones"):
        joined = np.concatenate([getattr(medium, name), getattr(expert, name)])
        np.testing.assert_array_equal(getattr(both, name), joined)
    for level in ("medium", "expert"):  # leave the suite as it was for the other tests
        generate.make_dataset(generate.dataset_id("hopper", level), 0, SIZE, overwrite=True)


def test_medium_expert_reuses_cached_halves_with_the_same_bytes(suite, monkeypatch):
    """medium-expert reads medium and expert back from the cache when they were made from the same
    policy files, seed and size, and its bytes are those of rolling them out again."""
    half = SIZE // 2
    for level in ("medium", "expert"):
        generate.make_dataset(generate.dataset_id("hopper", level), 0, half, overwrite=True)
    played = []
    rollout = generate.rollout
    monkeypatch.setattr(
        recipes,
        "rollout",
        lambda *args, **kwargs: played.append(args[5]) or rollout(*args, **kwargs),
    )
    name = generate.dataset_id("hopper", "medium-expert")
    reused = generate.make_dataset(name, 0, SIZE, overwrite=True)
    assert played == [] and reused.checksum == suite["medium-expert"].checksum
    # A cached medium of another seed is not reused: medium is played again, expert still read.
    generate.make_dataset(generate.dataset_id("hopper", "medium"), 1, half, overwrite=True)
    played.clear()
    again = generate.make_dataset(name, 0, SIZE, overwrite=True)
    assert played == [generate.STREAMS["medium"]] and again.checksum == reused.checksum
    monkeypatch.undo()
    for level in ("medium", "expert"):  # leave the suite as it was for the other tests
        generate.make_dataset(generate.dataset_id("hopper", level), 0, SIZE, overwrite=True)


def constant_actor_params(actor: TanhGaussianActor, obs_dim: int, value: float) -> dict:
    """Parameters whose policy plays tanh(value) in every dimension, with almost no noise."""
    params = jax.tree.map(
        jnp.zeros_like, actor.init(jax.random.PRNGKey(0), jnp.zeros((1, obs_dim)))
    )
    last = params["params"]["MLP_0"][f"TorchDense_{len(actor.hidden_dims)}"]
    last["bias"] = jnp.asarray([value] * actor.action_dim + [-10.0] * actor.action_dim)
    return params


def test_segments_play_in_order_for_their_share_of_the_steps():
    """medium-replay's mechanism: a uniform phase then a policy phase three times as long."""
    actor = TanhGaussianActor((8,), 3)
    playing = generate.Segment(constant_actor_params(actor, 11, 5.0), 3)
    episodes = generate.rollout(
        gym.spec("Hopper-v5"), actor, [generate.Segment(None, 1), playing], 4000, 0, 0, num_envs=8
    )
    actions = np.concatenate([e.actions for e in episodes])
    assert actions.shape == (4000, 3)
    assert int((actions > 0.99).all(axis=1).sum()) == 3000  # tanh(5) = 0.9999


def test_random_actions_sent_in_chunks_give_the_bytes_of_one_step_at_a_time(monkeypatch):
    """Uniform phases go to the workers RANDOM_CHUNK steps at a time; the chunks end at phase
    boundaries and at the budget's end, and the data and progress counts are those of
    stepping one vector step per round trip."""
    actor = TanhGaussianActor((8,), 3)
    segments = [
        generate.Segment(None, 1),
        generate.Segment(constant_actor_params(actor, 11, 0.3), 1),
        generate.Segment(None, 2),
    ]

    def played(chunk: int, workers: int) -> tuple[str, list[int]]:
        monkeypatch.setattr(rollouts, "RANDOM_CHUNK", chunk)
        told = []
        episodes = generate.rollout(
            gym.spec("Hopper-v5"), actor, segments, 2005, 0, 0, 8, workers, told.append
        )
        return generate.episodes_checksum(episodes), told

    one_by_one, counts = played(1, 1)
    assert sum(counts) == 2005 and counts[-1] == 5 and set(counts[:-1]) == {8}
    chunked, chunk_counts = played(16, 2)
    assert chunked == one_by_one
    assert sum(chunk_counts) == 2005 and max(chunk_counts) == 16 * 8


def test_same_seed_same_checksum_other_seed_other_data(suite):
    name = generate.dataset_id("hopper", "medium-replay")
    again = generate.make_dataset(name, 0, SIZE, overwrite=True)
    assert again.checksum == suite["medium-replay"].checksum
    other = generate.make_dataset(name, 1, SIZE, overwrite=True)
    assert other.checksum != again.checksum
    generate.make_dataset(name, 0, SIZE, overwrite=True)


def test_worker_processes_do_not_change_the_data(suite):
    made = generate.make_dataset(generate.dataset_id("hopper", "expert"), 0, SIZE, True, workers=2)
    assert made.checksum == suite["expert"].checksum


def test_rollout_cuts_exactly_and_closes_open_episodes():
    """Exact transition counts for any number of envs; the budget end is a truncation."""
    spec = gym.spec("Hopper-v5")
    for transitions, num_envs in ((1000, 7), (33, 32), (5, 8)):
        episodes = generate.rollout(
            spec, None, [generate.Segment(None, 1)], transitions, 0, 0, num_envs=num_envs
        )
        assert sum(len(e.rewards) for e in episodes) == transitions
        for episode in episodes:
            assert episode.observations.shape == (len(episode.rewards) + 1, 11)
            assert episode.terminations[-1] != episode.truncations[-1]
            assert not episode.terminations[:-1].any() and not episode.truncations[:-1].any()


# --- verification, missing data, registry ----------------------------------------------------


def test_a_modified_dataset_is_caught_on_load(suite, capsys):
    name = suite["random"].dataset_id
    assert load_task(name).checksum == suite["random"].checksum
    assert _checksum_status(name) == "ok"
    data_file = minari_io.minari_dataset_path(name) / "data" / "main_data.hdf5"
    try:
        with h5py.File(data_file, "a") as file:
            file["episode_0/rewards"][0] += 1.0
        with pytest.raises(DatasetError) as error:
            load_task(name)
        message = str(error.value)
        assert str(data_file.parent) in message and suite["random"].checksum in message
        assert f"`offrl data make {name} --overwrite`" in message
        assert _checksum_status(name) == "mismatch"
    finally:
        generate.make_dataset(name, 0, SIZE, overwrite=True)
    assert _checksum_status(name) == "unchecked"


def test_a_dataset_played_by_policies_shipped_before_is_stale(
    suite, tmp_path_factory, tmp_path, monkeypatch
):
    """Shipping again with a replay re-run's snapshots changes medium-replay's policies only."""
    base = tmp_path_factory.getbasetemp()
    reshipped = tmp_path / "policies"
    shutil.copytree(tiny_policies(base), reshipped)
    monkeypatch.setenv(manifest.POLICIES_ENV_VAR, str(reshipped))
    ship.ship(
        tiny_run(base),
        "Hopper-v5",
        reshipped,
        replay_run=tiny_replay_run(base),
        episodes=TINY_EPISODES,
        allow_below_threshold=True,
        progress=False,
    )
    replay, medium = (generate.dataset_id("hopper", level) for level in ("medium-replay", "medium"))
    with pytest.raises(DatasetError) as error:
        load_task(replay)
    assert f"`offrl data make {replay} --overwrite`" in str(error.value)
    assert load_task(medium).checksum == suite["medium"].checksum
    assert (_checksum_status(replay), _checksum_status(medium)) == ("stale", "ok")


def test_datasets_on_disk_stay_usable_without_shipped_policies(suite, tmp_path, monkeypatch):
    monkeypatch.setenv(manifest.POLICIES_ENV_VAR, str(tmp_path))  # no manifest there
    name = suite["medium"].dataset_id
    assert load_task(name).checksum == suite["medium"].checksum
    assert _checksum_status(name) == "ok"


def listed() -> dict[str, dict[str, str]]:
    """`offrl data list` as {task: {column: cell}}; cells never hold two spaces in a row."""
    lines = commands.list_tasks().split("\nD4RL files")[0].splitlines()
    names = re.split(r"\s{2,}", lines[0].strip())
    rows = (re.split(r"\s{2,}", line.strip()) for line in lines[1:])
    return {cells[0]: dict(zip(names, cells, strict=True)) for cells in rows}


def _checksum_status(name: str) -> str:
    return listed()[name]["CHECKSUM"]


def test_missing_dataset_names_the_make_command(suite):
    name = "offrl/walker2d/medium-v0"
    assert name in known_task_names()
    assert resolve_task(name).env_spec.id == "Walker2d-v5"
    with pytest.raises(DatasetError, match=f"`offrl data make {name}`"):
        load_task(name)


def test_making_without_shipped_policies_names_train_and_ship(suite):
    with pytest.raises(DatasetError) as error:
        generate.make_dataset("offrl/walker2d/expert-v0", 0, SIZE)
    assert "offrl behavior train --env Walker2d-v5" in str(error.value)
    assert not minari_io.minari_dataset_path("offrl/walker2d/expert-v0").exists()


def test_unknown_embedded_name_suggests_close_ones(suite):
    with pytest.raises(UnknownTaskError, match="offrl/hopper/medium-v0"):
        resolve_task("offrl/hopper/medium")


def test_list_shows_every_embedded_task(suite):
    table = listed()
    for level in LEVELS:
        row = table[generate.dataset_id("hopper", level)]
        assert (row["SOURCE"], row["EVAL ENV"]) == ("generated", "Hopper-v5")
        assert row["SIZE"].startswith(f"{SIZE:,} steps, ")
        assert row["CHECKSUM"] in ("ok", "unchecked")
        assert float(row["REF MIN"]) == pytest.approx(entry().random.return_mean, rel=1e-6)
    missing = table["offrl/halfcheetah/expert-v0"]
    assert (missing["SOURCE"], missing["EVAL ENV"], missing["SIZE"]) == (
        "generated", "HalfCheetah-v5", "-",
    )  # fmt: skip
    assert missing["ON DISK"] == "not on disk"
    assert "minari/offrl/hopper/random-v0" not in table  # listed once, as offrl/...


# --- command line -----------------------------------------------------------------------------


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_make_one_then_refuse_to_overwrite(suite):
    name = generate.dataset_id("hopper", "random")
    code, out, err = run(["data", "make", name, "--steps", "500", "--overwrite", "--no-progress"])
    assert code == 0, err
    assert out.startswith(f"Made {name} (seed 0)") and "500 transitions" in out
    code, out, err = run(["data", "make", name, "--steps", "500", "--no-progress"])
    assert code == 1 and out == "" and "already exists" in err and "--overwrite" in err
    generate.make_dataset(name, 0, SIZE, overwrite=True)


def test_cli_make_all_makes_what_it_can_and_names_the_rest(suite):
    code, out, err = run(["data", "make", "--all", "--steps", "300", "--no-progress"])
    assert code == 1
    for level in LEVELS:  # hopper's are on disk already: left alone
        assert f"{generate.dataset_id('hopper', level)}: on disk, left as it is" in out
    assert "offrl/halfcheetah/random-v0: No shipped behaviour policies" in err
    assert "offrl behavior ship --run runs/behavior/walker2d --env Walker2d-v5" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["data", "make", "--no-progress"], "or pass --all, not both"),
        (["data", "make", "offrl/hopper/random-v0", "--all"], "or pass --all, not both"),
        (["data", "make", "offrl/hopper/random-v0", "--steps", "0"], "--steps must be"),
        (["data", "make", "offrl/hopper/ranom-v0"], "is not an embedded dataset"),
    ],
)
def test_cli_make_bad_arguments(suite, argv, needle):
    code, out, err = run(argv)
    assert code == 1 and out == "" and needle in err and "Traceback" not in err
