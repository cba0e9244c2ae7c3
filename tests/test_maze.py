"""PointMaze under D4RL's maze2d protocol: planner + controller in the real env, generated episodes,
the fixed-goal evaluation spec and reference scores."""

from __future__ import annotations

import itertools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from offrl.data import minari_io
from offrl.data.pointmaze_datasets import (
    pointmaze_dataset_env,
    pointmaze_episodes,
    pointmaze_reference_scores,
)
from offrl.envs import flatten_goal_observation, make_env
from offrl.envs.pointmaze import (
    EVAL_GOAL_CELLS,
    GOAL_RADIUS,
    POINTMAZE_MAZES,
    controller_actions,
    maze_plan,
    pointmaze_env_id,
    pointmaze_eval_env_spec,
    shortest_path,
)
from offrl.errors import ConfigError

STEPS = 2500


def _free_cells(maze_map: list[list]) -> list[tuple[int, int]]:
    return [(i, j) for i, row in enumerate(maze_map) for j, v in enumerate(row) if v != 1]


@pytest.mark.parametrize("maze", POINTMAZE_MAZES)
def test_controller_reaches_every_goal_cell_from_the_farthest_cell(maze):
    env = gym.make(pointmaze_env_id(maze, dense=False), continuing_task=True, reset_target=False)
    plan = maze_plan(env.unwrapped.maze)
    free = _free_cells(env.unwrapped.maze.maze_map)
    for k, goal in enumerate(free):
        paths = [shortest_path(plan, start, goal) for start in free]
        path = max(paths, key=len)
        # A path walks free, 4-adjacent cells from its start to the goal.
        assert path[-1] == goal and all(cell in free for cell in path)
        assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in itertools.pairwise(path))
        options = {"goal_cell": np.array(goal), "reset_cell": np.array(path[0])}
        observation, _ = env.reset(seed=k, options=options)
        for _ in range(env.spec.max_episode_steps):
            action = controller_actions(plan, flatten_goal_observation(observation))
            observation, _, _, truncated, info = env.step(action)
            if info["success"] or truncated:
                break
        assert info["success"], f"{maze}: no arrival at {goal} from {path[0]}"
    env.close()


@pytest.fixture(scope="module")
def umaze_episodes():
    return pointmaze_episodes("umaze", dense=False, steps=STEPS, seed=0)


def _arrays(episodes) -> dict[str, np.ndarray]:
    return {
        "observation": np.concatenate([e.observations["observation"] for e in episodes]),
        "desired_goal": np.concatenate([e.observations["desired_goal"] for e in episodes]),
        "actions": np.concatenate([e.actions for e in episodes]),
        "rewards": np.concatenate([e.rewards for e in episodes]),
    }


def test_episodes_count_values_and_cuts(umaze_episodes):
    episodes = umaze_episodes
    assert sum(len(e.actions) for e in episodes) == STEPS
    arrays = _arrays(episodes)
    for name, values in arrays.items():
        assert np.all(np.isfinite(values)), name
    assert np.all(np.abs(arrays["actions"]) <= 1.0)
    # A continuing task: never a termination; each episode ends (and only ends) truncated.
    assert not any(e.terminations.any() for e in episodes)
    assert all(e.truncations[-1] and not e.truncations[:-1].any() for e in episodes)
    # One goal per episode: no transition spans a goal switch.
    for e in episodes:
        assert np.all(e.observations["desired_goal"] == e.observations["desired_goal"][0])
    # The sparse reward comes only on arrival, which ends the episode.
    assert not any(e.rewards[:-1].any() for e in episodes)
    # A cut either carries on from the arrival state (new goal) or resets at the time limit.
    since_reset, arrivals = 0, 0
    for ended, started in itertools.pairwise(episodes):
        since_reset += len(ended.actions)
        last, first = ended.observations, started.observations
        if np.array_equal(last["observation"][-1], first["observation"][0]):
            arrivals += 1
            assert ended.rewards[-1] == 1.0
            assert (
                np.linalg.norm(last["achieved_goal"][-1] - last["desired_goal"][-1]) <= GOAL_RADIUS
            )
            assert not np.array_equal(last["desired_goal"][-1], first["desired_goal"][0])
        else:
            assert since_reset == 300
            since_reset = 0
    assert arrivals >= 10


def test_episodes_deterministic_for_a_seed(umaze_episodes):
    told: list[int] = []
    again = _arrays(
        pointmaze_episodes("umaze", dense=False, steps=STEPS, seed=0, progress=told.append)
    )
    assert sum(told) == STEPS
    other = _arrays(pointmaze_episodes("umaze", dense=False, steps=STEPS, seed=1))
    first = _arrays(umaze_episodes)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["observation"], other["observation"])


def test_episodes_round_trip_through_minari(umaze_episodes, minari_dir):
    env = pointmaze_dataset_env("umaze", dense=False)
    eval_spec = pointmaze_eval_env_spec("umaze", dense=False)
    minari_io.write_minari_dataset(
        "test/pointmaze-umaze-v0", umaze_episodes, env, eval_env_spec=eval_spec
    )
    arrays = minari_io.load_minari_arrays("test/pointmaze-umaze-v0").arrays
    assert arrays["observations"].shape == (STEPS, 6) and not arrays["dones"].any()
    stored = minari_io.read_minari_info("test/pointmaze-umaze-v0").eval_env_spec
    assert stored == eval_spec and gym.make(stored).spec.max_episode_steps == 300


@pytest.mark.parametrize("maze", POINTMAZE_MAZES)
def test_eval_spec_has_one_fixed_goal(maze):
    spec = pointmaze_eval_env_spec(maze, dense=True)
    registered = gym.spec(pointmaze_env_id(maze, dense=True))
    assert spec.max_episode_steps == registered.max_episode_steps
    assert spec.kwargs["reward_type"] == "dense" and not spec.kwargs["reset_target"]
    env = gym.make(EnvSpec.from_json(spec.to_json()))  # buildable from the spec alone
    assert not Path(env.unwrapped.tmp_xml_file_path).exists()  # no temp file left per env
    goal_xy = env.unwrapped.maze.cell_rowcol_to_xy(np.array(EVAL_GOAL_CELLS[maze]))
    starts = []
    for seed in range(5):
        observation, info = env.reset(seed=seed)
        np.testing.assert_array_equal(observation["desired_goal"], goal_xy)
        assert not info["success"]
        starts.append(observation["achieved_goal"])
    assert len({tuple(s) for s in starts}) == 5
    # Reaching the goal neither moves it nor ends the episode.
    plan = maze_plan(env.unwrapped.maze)
    for _ in range(spec.max_episode_steps - 1):
        action = controller_actions(plan, flatten_goal_observation(observation))
        observation, _, terminated, _, info = env.step(action)
        assert not terminated
    assert info["success"]
    np.testing.assert_array_equal(observation["desired_goal"], goal_xy)
    assert make_env(spec).observation_space.shape == (6,)


def test_reference_scores_expert_beats_random():
    low, high = pointmaze_reference_scores("umaze", dense=False, episodes=4)
    assert 0.0 <= low < high <= 300.0
    assert high > 100.0  # the expert spends most of a 300-step episode at the goal


def test_unknown_maze_is_a_config_error():
    with pytest.raises(ConfigError, match="umaze, medium, large"):
        pointmaze_env_id("huge", dense=False)
