"""PointMaze navigation datasets generated as D4RL's maze2d ones, and their reference scores.

D4RL (`scripts/generation/generate_maze2d_datasets.py`) runs one planner-driven point through the
maze: on reaching its goal a new goal cell is drawn and the point carries on (a continuing task,
never a terminal state), with N(0, 0.5²) action noise (D4RL's --noisy; Minari's pointmaze
scripts always add it). Here the gymnasium-robotics env does the goal resampling itself
(continuing_task=True, reset_target=True) and the stream is cut into Minari episodes at two kinds
of boundary, both stored as truncations, never terminations:

- goal arrival (D4RL's `timeouts`, Minari's D4RL/pointmaze "success" cut): each Minari episode
  chases one goal. The env hands back the step's observation with the goal just reached and
  switches goals afterwards, so the next episode starts from the same state showing the new goal
  (the first observation Minari's own datasets get wrong, Minari issue #265);
- the registered time limit (300/600/800 steps since the last reset), where the env is reset to a
  random start, as gymnasium's TimeLimit does.

No transition therefore ever spans a goal switch.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.data.collect import _Episode
from offrl.envs import flatten_goal_observation, make_vector_env
from offrl.envs.pointmaze import (
    controller_actions,
    maze_plan,
    pointmaze_env_id,
    pointmaze_eval_env_spec,
)
from offrl.errors import ConfigError
from offrl.evaluate import run_episodes

# Transitions per dataset: D4RL's maze2d-{umaze,medium,large}-v1 sizes.
POINTMAZE_STEPS = {"umaze": 1_000_000, "medium": 2_000_000, "large": 4_000_000}

ACTION_NOISE = 0.5  # std of the Gaussian added to the expert's actions (D4RL --noisy, Minari)


def pointmaze_dataset_env(maze: str, dense: bool) -> gym.Env:
    """The collection env: the registered PointMaze whose goal moves on as soon as it is reached."""
    return gym.make(pointmaze_env_id(maze, dense), continuing_task=True, reset_target=True)


def pointmaze_episodes(
    maze: str,
    dense: bool,
    steps: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
) -> list[EpisodeBuffer]:
    """Exactly `steps` transitions of the noisy expert, cut into episodes as the module explains.

    Deterministic for a seed: the env is seeded once and the action noise has its own generator.
    `progress(n)` is told the transitions of each finished episode (fits `tqdm.update`).
    """
    if steps < 1:
        raise ConfigError(f"steps must be a positive number of transitions, got {steps}.")
    env = pointmaze_dataset_env(maze, dense)
    try:
        return _expert_stream(env, steps, seed, progress)
    finally:
        env.close()


def _expert_stream(
    env: gym.Env, steps: int, seed: int, progress: Callable[[int], None] | None
) -> list[EpisodeBuffer]:
    """The loop of `pointmaze_episodes` in an open collection env."""
    plan = maze_plan(env.unwrapped.maze)
    space = env.action_space
    noise = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    episode = _Episode(seed=seed, observations=[observation])
    episodes = []
    for step in range(steps):
        expert = controller_actions(plan, flatten_goal_observation(observation))
        noisy = expert + ACTION_NOISE * noise.standard_normal(space.shape)
        action = np.clip(noisy, space.low, space.high).astype(space.dtype)
        observation, reward, terminated, truncated, info = env.step(action)
        arrived, last = info["success"], step == steps - 1
        episode.observations.append(observation)
        episode.actions.append(action)
        episode.rewards.append(float(reward))
        episode.terminations.append(terminated)
        episode.truncations.append(not terminated and (truncated or arrived or last))
        if terminated or truncated or arrived or last:
            episodes.append(episode.to_buffer())
            if progress is not None:
                progress(len(episode.actions))
            if terminated or truncated:
                observation, _ = env.reset()
            else:  # the same state, now showing the goal the env switched to
                observation = {**observation, "desired_goal": env.unwrapped.goal.copy()}
            episode = _Episode(seed=None, observations=[observation])
    return episodes


def pointmaze_reference_scores(
    maze: str, dense: bool, episodes: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Average returns of uniform random actions (min) and of the noiseless expert (max).

    D4RL's convention (REF_MIN_SCORE from a random policy, REF_MAX_SCORE from the expert), measured
    in `pointmaze_eval_env_spec` so normalised scores refer to this suite's own env and expert.
    Both policies face the same starts (offrl's evaluation seeding from `seed`).
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}.")
    envs = make_vector_env(pointmaze_eval_env_spec(maze, dense), episodes)
    plan = maze_plan(envs.envs[0].unwrapped.maze)
    space = envs.single_action_space
    uniform = np.random.default_rng(seed)

    def uniform_policy(observations: np.ndarray) -> np.ndarray:
        return uniform.uniform(space.low, space.high, (*observations.shape[:-1], *space.shape))

    try:
        low = run_episodes(uniform_policy, envs, [seed], episodes)
        high = run_episodes(lambda obs: controller_actions(plan, obs), envs, [seed], episodes)
    finally:
        envs.close()
    return float(low.mean()), float(high.mean())
