"""Task names, evaluation envs, suggestions, and the `offrl data` verbs."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, HOPPER_STEPS, write_d4rl
from gymnasium.envs.registration import EnvSpec

from offrl.data import commands, d4rl, minari_io
from offrl.data.collect import play_episodes, uniform_policy
from offrl.data.registry import known_task_names, load_task, resolve_task
from offrl.data.transitions import episode_returns
from offrl.envs import make_env
from offrl.errors import ConfigError, DatasetError, OffrlError, UnknownTaskError


@pytest.mark.parametrize(
    ("name", "env_id", "obs_dim", "action_dim"),
    [
        ("d4rl/hopper-medium-v2", "Hopper-v5", 11, 3),
        ("d4rl/halfcheetah-expert-v0", "HalfCheetah-v5", 17, 6),
        ("d4rl/walker2d-full-replay-v1", "Walker2d-v5", 17, 6),
        ("d4rl/ant-medium-expert-v2", "Ant-v4", 111, 8),
    ],
)
def test_d4rl_eval_envs_match_d4rl_layouts(name, env_id, obs_dim, action_dim):
    task = resolve_task(name)
    assert (task.name, task.source, task.env_spec.id) == (name, "d4rl", env_id)
    env = make_env(task.env_spec)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (action_dim,)
    env.close()


def test_ant_contact_forces_do_not_leak_into_gym_registry():
    assert resolve_task("d4rl/ant-random-v2").env_spec.kwargs["use_contact_forces"] is True
    assert "use_contact_forces" not in gym.spec("Ant-v4").kwargs


def test_task_reference_scores():
    task = resolve_task("d4rl/walker2d-medium-replay-v2")
    assert (task.ref_min_score, task.ref_max_score) == (1.629008, 4592.3)
    np.testing.assert_allclose(task.normalized_score([1.629008, 4592.3]), [0.0, 100.0])


def test_maze2d_tasks_are_known_but_not_evaluable():
    name = "d4rl/maze2d-large-dense-v1"
    with pytest.raises(OffrlError, match="no port here, so it cannot be evaluated") as error:
        resolve_task(name)
    assert not isinstance(error.value, UnknownTaskError)
    assert "offrl/pointmaze/umaze-v0" in str(error.value)
    assert name in known_task_names()


@pytest.mark.parametrize(
    ("name", "env_id", "steps"),
    [
        ("d4rl/antmaze-umaze-v2", "offrl/AntMaze_UMaze-v0", 700),
        ("d4rl/antmaze-umaze-diverse-v0", "offrl/AntMaze_UMaze-v0", 700),
        ("d4rl/antmaze-medium-play-v2", "offrl/AntMaze_Medium-v0", 1000),
        ("d4rl/antmaze-large-diverse-v2", "offrl/AntMaze_Large-v0", 1000),
    ],
)
def test_d4rl_antmaze_tasks_evaluate_in_the_d4rl_ant_mazes(name, env_id, steps):
    task = resolve_task(name)
    assert (task.env_spec.id, task.env_spec.max_episode_steps) == (env_id, steps)
    assert (task.ref_min_score, task.ref_max_score) == (0.0, 1.0)


def test_a_missing_d4rl_antmaze_file_points_to_its_generated_counterpart(d4rl_dir):
    with pytest.raises(DatasetError, match=r"offrl data make offrl/antmaze/medium-play-v0"):
        load_task("d4rl/antmaze-medium-play-v2")


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("d4rl/hoper-medium-v2", "d4rl/hopper-medium-v2"),
        ("hopper-medium-v2", "d4rl/hopper-medium-v2"),
        ("d4rl/halfcheetah-medium-replay", "d4rl/halfcheetah-medium-replay-v2"),
    ],
)
def test_unknown_names_suggest_close_known_names(typed, suggested):
    with pytest.raises(UnknownTaskError, match="Did you mean") as error:
        resolve_task(typed)
    assert suggested in str(error.value)


def test_unknown_source_lists_the_prefixes():
    with pytest.raises(UnknownTaskError, match=r"d4rl/\.\.\., minari/\.\.\."):
        resolve_task("offrl/hopper/medium")


def test_known_names_include_local_minari_datasets(hopper_dataset):
    names = known_task_names()
    assert f"minari/{HOPPER_DATASET_ID}" in names
    assert "d4rl/hopper-medium-v2" in names and "d4rl/hopper-full-replay-v0" not in names


def test_minari_task_uses_the_stored_eval_env(hopper_dataset):
    task = resolve_task(f"minari/{HOPPER_DATASET_ID}")
    assert task.source == "minari" and task.env_spec.id == "Hopper-v5"


def test_minari_typo_suggests_the_local_dataset(hopper_dataset):
    with pytest.raises(DatasetError, match="not in the local Minari cache") as error:
        resolve_task("minari/offrl-test/hoper-random-v0")
    assert f"minari/{HOPPER_DATASET_ID}" in str(error.value)


# --- offrl data list | info | collect -----------------------------------------------------


def test_list_shows_every_task_and_where_it_is(hopper_dataset, d4rl_dir, hopper_raw):
    path = write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", hopper_raw)
    text = commands.list_tasks()
    lines = {line.split()[0]: line for line in text.splitlines()[1:] if line.strip()}
    assert len([n for n in lines if n.startswith("d4rl/")]) == len(d4rl.D4RL_REF_SCORES)
    assert "3,000 rows" in lines["d4rl/hopper-random-v2"] and str(path) in text
    assert "not on disk" in lines["d4rl/hopper-medium-v2"]
    assert re.search(r"-20\.272305 +3234\.3 ", lines["d4rl/hopper-medium-v2"])
    assert "offrl/AntMaze_UMaze-v0" in lines["d4rl/antmaze-umaze-v2"]
    assert "none (maze2d: use offrl/pointmaze)" in lines["d4rl/maze2d-umaze-v1"]
    assert not any("not supported" in line or "later issue" in line for line in lines.values())
    assert f"{HOPPER_STEPS:,} steps" in lines[f"minari/{HOPPER_DATASET_ID}"]


def test_info_on_a_minari_task(hopper_dataset):
    text = commands.info(f"minari/{HOPPER_DATASET_ID}")
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    assert re.search(rf"transitions +{HOPPER_STEPS:,}\n", text)
    assert re.search(rf"episodes +{hopper_dataset.episodes:,} ", text)
    assert "none: raw returns are reported" in text
    assert re.search(r"collected by +offrl-collect/random\n", text)
    assert loaded.checksum in text and "Hopper-v5" in text


def test_info_on_a_d4rl_task(d4rl_dir, hopper_raw):
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", hopper_raw)
    text = commands.info("d4rl/hopper-random-v2")
    expected_rows = 2999 - int(hopper_raw["timeouts"][:-1].sum())
    assert re.search(rf"transitions +{expected_rows:,}\n", text)
    assert "normalized return" in text and "min -20.272305, max 3234.3" in text
    # Episodes in the table: every terminal and every dropped timeout closes one.
    episodes = int(hopper_raw["terminals"][:-1].sum() + hopper_raw["timeouts"][:-1].sum()) + 1
    assert re.search(rf"episodes +{episodes:,} ", text)


def test_episode_returns_match_the_collected_episodes(hopper_dataset):
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    returns = episode_returns(loaded.transitions)
    np.testing.assert_allclose(returns, hopper_dataset.episode_returns, rtol=1e-5)


def test_collect_command_summary(minari_dir):
    text = commands.collect_command("Hopper-v5", "random", 120, "test/cmd-v0", seed=4)
    assert "Wrote 120 transitions" in text and "minari/test/cmd-v0" in text
    with pytest.raises(DatasetError, match="already exists"):
        commands.collect_command("Hopper-v5", "random", 120, "test/cmd-v0", seed=4)
    with pytest.raises(ConfigError):
        commands.collect_command("NoSuchEnv-v0", "random", 120, "test/other-v0")


def test_eval_env_that_cannot_be_created(minari_dir):
    env = gym.make("Hopper-v5")
    buffers = play_episodes(env, uniform_policy(env, seed=0), 20, seed=0)
    missing = EnvSpec("NotInstalled-v0", entry_point="offrl_missing_module:Env")
    minari_io.write_minari_dataset("test/orphan-v0", buffers, env, eval_env_spec=missing)
    with pytest.raises(OffrlError, match=r"NotInstalled-v0 .*cannot be created.*Install"):
        load_task("minari/test/orphan-v0")
