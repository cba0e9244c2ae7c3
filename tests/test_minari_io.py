"""Minari round trip on real collected data, atomic writes, goal-conditioned flattening."""

from __future__ import annotations

import gymnasium as gym
import jax
import minari
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, HOPPER_STEPS, POINT_GOAL_ENV_ID
from minari.dataset._storages.hdf5_storage import HDF5Storage

from offrl.data import minari_io, minari_write
from offrl.data.collect import collect, play_episodes, uniform_policy
from offrl.data.registry import load_task
from offrl.envs import flatten_goal_observation, make_env, make_vector_env
from offrl.errors import ConfigError, DatasetError


def test_round_trip_counts_and_semantics(hopper_dataset):
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    t = loaded.transitions
    assert t.size == HOPPER_STEPS == hopper_dataset.steps
    assert (t.obs_dim, t.action_dim) == (11, 3)
    assert loaded.task.env_spec.id == "Hopper-v5"
    assert loaded.path == str(hopper_dataset.path)

    episodes = list(minari.load_dataset(HOPPER_DATASET_ID).iterate_episodes())
    assert len(episodes) == hopper_dataset.episodes
    lengths = np.array([len(e) for e in episodes])
    ends = np.cumsum(lengths) - 1
    within = np.setdiff1d(np.arange(t.size - 1), ends)
    # Within an episode the next observation is the following row's observation.
    np.testing.assert_array_equal(t.next_observations[within], t.observations[within + 1])
    terminations = np.concatenate([e.terminations for e in episodes])
    truncations = np.concatenate([e.truncations for e in episodes])
    np.testing.assert_array_equal(t.dones, terminations.astype(np.float32))
    # The budget cut the last episode: it is truncated, and a truncation is never a done.
    assert truncations[-1] and not terminations[-1] and t.dones[-1] == 0
    assert hopper_dataset.terminated == hopper_dataset.episodes - 1
    assert t.dones.sum() == hopper_dataset.terminated
    last = episodes[-1]
    np.testing.assert_array_equal(t.next_observations[-1], last.observations[-1].astype(np.float32))


@pytest.mark.parametrize("env_id", ["Hopper-v5", POINT_GOAL_ENV_ID])
def test_episodes_read_back_exactly_as_minaris_own_writer_stores_them(minari_dir, env_id):
    """offrl writes Minari's HDF5 layout itself (fast); minari must read it back identically."""
    env = gym.make(env_id)  # PointGoal keeps its Dict observations: subgroups in the file
    episodes = play_episodes(env, uniform_policy(env, 0), 150, seed=3)
    assert len(episodes) > 2 and episodes[0].seed == 3 and episodes[1].seed is None
    ours = minari_io.write_minari_dataset("test/ours-v0", episodes, env)
    theirs = HDF5Storage.new(
        minari_dir / "theirs",
        observation_space=env.observation_space,
        action_space=env.action_space,
        env_spec=env.spec,
    )
    theirs.update_episodes(episodes)
    ours = HDF5Storage.read(ours / "data")
    assert (ours.total_steps, ours.total_episodes) == (150, len(episodes))
    assert (theirs.total_steps, theirs.total_episodes) == (150, len(episodes))
    indices = range(len(episodes))
    assert list(ours.get_episode_metadata(indices)) == list(theirs.get_episode_metadata(indices))
    for mine, reference in zip(
        ours.get_episodes(indices), theirs.get_episodes(indices), strict=True
    ):
        assert jax.tree.structure(mine) == jax.tree.structure(reference)
        for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(reference), strict=True):
            a, b = np.asarray(a), np.asarray(b)
            assert (a.dtype, a.shape) == (b.dtype, b.shape)
            np.testing.assert_array_equal(a, b)


def test_reference_scores_absent_means_raw_returns(hopper_dataset):
    task = load_task(f"minari/{HOPPER_DATASET_ID}").task
    assert task.ref_min_score is None and task.normalized_score(np.array([1.0])) is None


def test_reference_scores_from_metadata(minari_dir):
    env = gym.make("Hopper-v5")
    buffers = play_episodes(env, uniform_policy(env, seed=3), 50, seed=3)
    minari_io.write_minari_dataset("test/scored-v1", buffers, env, ref_scores=(-20.0, 3000.0))
    task = load_task("minari/test/scored-v1").task
    assert (task.ref_min_score, task.ref_max_score) == (-20.0, 3000.0)
    np.testing.assert_allclose(task.normalized_score(np.array([1490.0])), [50.0])


def test_same_seed_same_checksum(minari_dir):
    first = collect("Hopper-v5", "random", 400, "test/a-v0", seed=7)
    second = collect("Hopper-v5", "random", 400, "test/b-v0", seed=7)
    other = collect("Hopper-v5", "random", 400, "test/c-v0", seed=8)
    checksums = [load_task(f"minari/{info.dataset_id}").checksum for info in (first, second, other)]
    assert checksums[0] == checksums[1] != checksums[2]


def test_collect_into_existing_id_is_refused(minari_dir):
    collect("Hopper-v5", "random", 100, "test/x-v0", seed=0)
    before = load_task("minari/test/x-v0").checksum
    with pytest.raises(DatasetError, match=r"already exists.*--overwrite"):
        collect("Hopper-v5", "random", 100, "test/x-v0", seed=1)
    assert load_task("minari/test/x-v0").checksum == before
    collect("Hopper-v5", "random", 100, "test/x-v0", seed=1, overwrite=True)
    assert load_task("minari/test/x-v0").checksum != before
    assert not [p for p in minari_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad_id", ["hopper-random", "test/hopper-random", "test/hopper random-v0"])
def test_collect_with_bad_id(minari_dir, bad_id):
    with pytest.raises(DatasetError, match=r"not a valid Minari dataset id.*-v<N>"):
        collect("Hopper-v5", "random", 10, bad_id)
    assert not minari_dir.exists() or not any(minari_dir.iterdir())


def test_bad_id_suggests_a_version():
    with pytest.raises(DatasetError, match="'hopper-random-v0'"):
        minari_io.validate_dataset_id("hopper-random")


def test_failed_write_leaves_nothing(minari_dir, monkeypatch):
    def fail(path, episodes):
        raise RuntimeError("disk full")

    monkeypatch.setattr(minari_write, "_write_episodes", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        collect("Hopper-v5", "random", 50, "test/broken-v0")
    assert [p.name for p in minari_dir.iterdir()] == []


def test_failed_overwrite_keeps_the_old_dataset(minari_dir, monkeypatch):
    collect("Hopper-v5", "random", 60, "test/keep-v0", seed=0)
    before = load_task("minari/test/keep-v0").checksum
    monkeypatch.setattr(minari_write, "_write_episodes", lambda path, episodes: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        collect("Hopper-v5", "random", 60, "test/keep-v0", seed=1, overwrite=True)
    assert load_task("minari/test/keep-v0").checksum == before
    assert not [p for p in minari_dir.iterdir() if p.name.startswith(".")]


def test_missing_dataset_says_where_and_how(minari_dir):
    with pytest.raises(DatasetError) as error:
        load_task("minari/mujoco/hopper/medium-v0")
    message = str(error.value)
    assert str(minari_dir / "mujoco" / "hopper" / "medium-v0" / "data") in message
    assert "minari download mujoco/hopper/medium-v0" in message
    assert "offrl data collect" in message


def test_corrupt_minari_file(minari_dir):
    info = collect("Hopper-v5", "random", 80, "test/corrupt-v0")
    data_file = info.path / "data" / "main_data.hdf5"
    with open(data_file, "r+b") as file:
        file.truncate(data_file.stat().st_size // 3)
    with pytest.raises(DatasetError, match=r"cannot be read.*truncated or corrupt"):
        load_task("minari/test/corrupt-v0")


def test_unknown_env_and_policy_and_steps(minari_dir):
    with pytest.raises(ConfigError, match="Hopper-v5"):
        collect("Hoper-v5", "random", 10, "test/e-v0")
    with pytest.raises(ConfigError, match="Known policies: random"):
        collect("Hopper-v5", "expert-ish", 10, "test/e-v0")
    with pytest.raises(ConfigError, match="positive"):
        collect("Hopper-v5", "random", 0, "test/e-v0")
    assert not minari_dir.exists() or not any(minari_dir.iterdir())


def test_goal_conditioned_dataset_is_flattened(minari_dir):
    collect(POINT_GOAL_ENV_ID, "random", 120, "test/point-goal-v0", seed=0)
    loaded = load_task("minari/test/point-goal-v0")
    episodes = list(minari.load_dataset("test/point-goal-v0").iterate_episodes())
    raw = episodes[0].observations
    expected = np.concatenate([raw["observation"], raw["desired_goal"]], axis=-1)[:-1]
    expected = expected.astype(np.float32)
    np.testing.assert_array_equal(loaded.transitions.observations[: len(expected)], expected)
    assert loaded.transitions.obs_dim == 4

    env = make_env(loaded.task.env_spec)
    observation, _ = env.reset(seed=0)
    assert observation.shape == env.observation_space.shape == (4,)
    envs = make_vector_env(loaded.task.env_spec, 3)
    observations, _ = envs.reset(seed=0)
    assert observations.shape == (3, 4)
    envs.close()


def test_flatten_goal_observation_order():
    obs = {"achieved_goal": np.zeros((5, 2)), "desired_goal": np.full((5, 2), 2.0)}
    obs["observation"] = np.ones((5, 3))
    flat = flatten_goal_observation(obs)
    np.testing.assert_array_equal(flat[0], [1, 1, 1, 2, 2])
    array = np.arange(3.0)
    assert flatten_goal_observation(array) is array
