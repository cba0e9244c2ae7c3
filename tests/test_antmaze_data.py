"""AntMaze data collection: the planner, the collection env's goals and reward relabelling, the
shipped navigator, and the datasets made from it (conventions, statistics, determinism)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents import PRDC, TD3BC
from offrl.agent import official_config
from offrl.behavior import manifest
from offrl.behavior.navigator import FAMILY, success_rate
from offrl.data import antmaze_datasets, commands, generate
from offrl.data.collect import collect
from offrl.data.minari_read import read_episode_buffers, read_minari_info
from offrl.data.registry import load_task
from offrl.envs import ANTMAZE_ENV_IDS, antmaze_collect_env_id
from offrl.envs.ant import STATE_DIM
from offrl.envs.antmaze import (
    ANTMAZE_MAZES,
    GOAL,
    GOAL_RADIUS,
    PLAY_GOAL_CELLS,
    START,
    AntMazeCollectEnv,
    cell_xy,
    cells_marked,
    distances_to,
    evaluation_goal_point,
    maze_map,
    next_cell,
    open_cells,
    xy_cell,
)
from offrl.errors import ConfigError
from offrl.train import fit


@pytest.mark.parametrize("maze", ANTMAZE_MAZES)
def test_planner_reaches_every_goal_cell_from_every_cell(maze):
    rows = maze_map(maze)
    cells = open_cells(rows)
    for goal in cells:
        distance = distances_to(rows, goal)
        assert set(distance) == set(cells)  # every open cell connects to every other
        for start in cells:
            cell, moves = start, 0
            while cell != goal:
                following = next_cell(rows, distance, cell)
                assert abs(following[0] - cell[0]) + abs(following[1] - cell[1]) == 1
                assert rows[following[0]][following[1]] != "1"
                cell, moves = following, moves + 1
            assert moves == distance[start]  # a shortest path


def test_cells_and_points_agree():
    rows = maze_map("large")
    for cell in open_cells(rows):
        centre = cell_xy(rows, cell)
        assert xy_cell(rows, centre) == cell
        assert xy_cell(rows, centre + 1.9) == cell and xy_cell(rows, centre - 1.9) == cell
    for maze, goals in PLAY_GOAL_CELLS.items():
        rows = maze_map(maze)
        assert set(goals) <= set(open_cells(rows))
        assert cells_marked(rows, GOAL)[0] in goals  # the evaluation goal is among them


def test_rewards_are_relabelled_against_the_evaluation_goal():
    env = gym.make(antmaze_collect_env_id("medium", "diverse"))
    ant = env.unwrapped
    env.reset(seed=3)
    rows = maze_map("medium")
    point = evaluation_goal_point(rows)
    np.testing.assert_allclose(point - cell_xy(rows, cells_marked(rows, GOAL)[0]), [0.75, 0.75])
    ant.planner.set_goal((1, 1), cell_xy(rows, (1, 1)))  # collection goal elsewhere
    ant.data.qpos[:2] = point
    _, reward, terminated, truncated, _ = env.step(np.zeros(8))
    assert np.linalg.norm(ant.xy - point) <= GOAL_RADIUS
    assert (reward, terminated, truncated) == (1.0, False, False)  # nothing ends the episode
    ant.data.qpos[:2] = cell_xy(rows, (1, 2))
    assert env.step(np.zeros(8))[1] == 0.0
    env.close()


def test_a_reached_goal_gives_way_to_a_new_one_and_the_waypoint_leads_there():
    env = gym.make(antmaze_collect_env_id("large", "diverse"))
    ant = env.unwrapped
    observation, info = env.reset(seed=0)
    assert observation.shape == (STATE_DIM + 2,)
    np.testing.assert_array_equal(observation[STATE_DIM:], ant.planner.waypoint)
    goal = info["goal"]
    ant.data.qpos[:2] = goal
    _, _, _, _, info = env.step(np.zeros(8))
    assert info["goals_reached"] == 1
    assert not np.array_equal(info["goal"], goal)
    # The waypoint is the next cell of the path (its centre + U(0, 1)), or the goal in its cell.
    here, target = xy_cell(ant.rows, ant.xy), ant.planner.waypoint_cell
    distance = distances_to(ant.rows, ant.planner.goal_cell)
    assert target == next_cell(ant.rows, distance, here)
    offset = ant.planner.waypoint - cell_xy(ant.rows, target)
    assert target == ant.planner.goal_cell or np.all((offset >= 0) & (offset <= 1))
    env.close()


def test_umaze_collection_starts_in_the_start_cell_with_the_evaluation_goal():
    env = gym.make(antmaze_collect_env_id("umaze", "fixed"))
    rows = maze_map("umaze")
    for seed in range(3):
        _, info = env.reset(seed=seed)
        assert xy_cell(rows, env.unwrapped.xy) == cells_marked(rows, START)[0]
        assert xy_cell(rows, info["goal"]) == cells_marked(rows, GOAL)[0]
    env.close()


def test_unknown_goal_kind_is_refused():
    with pytest.raises(ConfigError, match="Unknown goal kind 'everywhere'"):
        AntMazeCollectEnv("umaze", "everywhere")


def test_shipped_navigator_reaches_the_umaze_goal():
    entry = manifest.navigator_entry(FAMILY)
    assert entry.env_id == "offrl/AntGoal-v0" and entry.obs_dim == STATE_DIM
    assert min(entry.success.values()) >= 0.9  # measured at shipping, 100 episodes per maze
    params = manifest.load_actor(entry, entry)
    assert success_rate(manifest.actor_module(entry), params, "umaze", episodes=2) == 1.0


def test_made_antmaze_dataset_follows_d4rl_conventions(data_dirs):
    name = "offrl/antmaze/umaze-diverse-v0"
    made = generate.make_dataset(name, seed=0, transitions=3_000, overwrite=True)
    episodes = read_episode_buffers(name)
    assert sum(len(e.actions) for e in episodes) == 3_000
    for episode in episodes:
        assert np.asarray(episode.observations).shape[1] == STATE_DIM  # no waypoint, no goal
        np.testing.assert_array_equal(episode.terminations, np.asarray(episode.rewards) == 1.0)
        assert len(episode.actions) <= 1000 and episode.truncations[-1]
        assert not np.any(episode.truncations[:-1])
        assert np.all(np.abs(episode.actions) <= 1.0)
    metadata = read_minari_info(name).metadata
    rewarded = int(sum(np.sum(np.asarray(e.rewards) == 1.0) for e in episodes))
    assert metadata["offrl_reward_one_steps"] == rewarded
    assert metadata["offrl_collector_success"] == manifest.navigator_entry(FAMILY).success["umaze"]
    assert metadata["offrl_policies"] == [manifest.navigator_entry(FAMILY).sha256]
    text = commands.info(name)
    assert f"reward-1 steps     {rewarded:,}" in text and "collector success" in text
    assert f"{ANTMAZE_ENV_IDS['umaze']}" in text and "700 steps per episode" in text
    # The same seed and size give the same bytes whatever the number of worker processes.
    again = antmaze_datasets.antmaze_episodes("umaze-diverse", 0, 3_000, workers=2)
    assert generate.episodes_checksum(again) == made.checksum
    other = antmaze_datasets.antmaze_episodes("umaze-diverse", 1, 3_000)
    assert generate.episodes_checksum(other) != made.checksum


@pytest.mark.parametrize("name", ["medium-play", "large-diverse"])
def test_medium_and_large_datasets_start_anywhere_and_relabel_to_the_evaluation_goal(name):
    maze, _ = antmaze_datasets.DATASETS[name]
    rows = maze_map(maze)
    episodes = antmaze_datasets.antmaze_episodes(name, 0, 2_000)
    starts = {xy_cell(rows, np.asarray(e.observations)[0, :2]) for e in episodes if e.seed}
    assert len(starts) > 5 and starts <= set(open_cells(rows))  # random start cells
    point = evaluation_goal_point(rows)
    for episode in episodes:
        near = np.linalg.norm(np.asarray(episode.observations)[1:, :2] - point, axis=1)
        np.testing.assert_array_equal(np.asarray(episode.rewards) == 1.0, near <= GOAL_RADIUS)


def test_every_antmaze_dataset_has_a_recipe():
    names = [f"offrl/antmaze/{name}-v0" for name in antmaze_datasets.DATASETS]
    assert names == [
        "offrl/antmaze/umaze-v0",
        "offrl/antmaze/umaze-diverse-v0",
        "offrl/antmaze/medium-play-v0",
        "offrl/antmaze/medium-diverse-v0",
        "offrl/antmaze/large-play-v0",
        "offrl/antmaze/large-diverse-v0",
    ]
    for name in names:
        recipe = generate.find_recipe(name)
        assert recipe.transitions == 1_000_000 and recipe.reference_scores() == (0.0, 1.0)


def test_agents_train_and_evaluate_on_generated_antmaze(data_dirs):
    generate.make_dataset("offrl/antmaze/umaze-v0", seed=0, transitions=2_000, overwrite=True)
    loaded = load_task("offrl/antmaze/umaze-v0")
    result = fit(
        PRDC,
        loaded.transitions,
        steps=20,
        eval_every=10,
        eval_episodes=1,
        task=loaded.task,
        progress=False,
    )
    config = official_config(PRDC, loaded.task.name)  # what fit trained with
    assert (config.reward_scale, config.reward_shift, config.alpha) == (10000.0, -1.0, 7.5)
    for record in result.records:
        assert record["episode_returns"][0] in (0.0, 1.0)  # arrived or not
        assert record["normalized_score"] == 100.0 * record["episode_returns"][0]


def test_a_minari_antmaze_dataset_evaluates_in_its_own_env(minari_dir):
    collect("AntMaze_UMaze-v5", "random", 300, "D4RL/antmaze/umaze-v1")
    loaded = load_task("minari/D4RL/antmaze/umaze-v1")
    assert loaded.task.env_spec.id == "AntMaze_UMaze-v5"
    result = fit(
        TD3BC,
        loaded.transitions,
        steps=10,
        eval_every=10,
        eval_episodes=1,
        task=loaded.task,
        progress=False,
    )
    assert all(np.isfinite(record["return"]) for record in result.records)
