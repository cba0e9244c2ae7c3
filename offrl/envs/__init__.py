"""Evaluation environments built from a task's EnvSpec, goal-conditioned observations flattened."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import SyncVectorEnv

# Order of the flat vector: what the agent sees, then where it must go (as D4RL's mazes store it).
GOAL_KEYS = ("observation", "desired_goal")


def is_goal_space(space: gym.Space) -> bool:
    """A Dict observation space holding at least `observation` and `desired_goal`."""
    return isinstance(space, gym.spaces.Dict) and all(key in space.spaces for key in GOAL_KEYS)


def flatten_goal_observation(observation):
    """Dict observation -> concat(observation, desired_goal) on the last axis; arrays pass through.

    Works on one observation or on a stack of them (an episode, a vector env batch).
    """
    if isinstance(observation, Mapping):
        return np.concatenate([np.asarray(observation[key]) for key in GOAL_KEYS], axis=-1)
    return observation


def flatten_goal_space(space: gym.Space) -> gym.Space:
    """The Box `flatten_goal_observation` maps a goal Dict space onto; other spaces unchanged."""
    if not is_goal_space(space):
        return space
    parts = [space.spaces[key] for key in GOAL_KEYS]
    return gym.spaces.Box(
        low=np.concatenate([part.low for part in parts], axis=-1),
        high=np.concatenate([part.high for part in parts], axis=-1),
        dtype=np.result_type(*(part.dtype for part in parts)),
    )


class FlattenGoalObservation(gym.ObservationWrapper):
    """Presents a goal-conditioned env to the agent as one flat Box observation."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = flatten_goal_space(env.observation_space)

    def observation(self, observation):
        return flatten_goal_observation(observation)


def make_env(env_spec: EnvSpec) -> gym.Env:
    """`gym.make(env_spec)`, with goal-conditioned Dict observations flattened."""
    env = gym.make(env_spec)
    if is_goal_space(env.observation_space):
        env = FlattenGoalObservation(env)
    return env


def action_bound(env_spec: EnvSpec) -> float:
    """The largest action magnitude the env accepts (its actions are in [-bound, bound])."""
    env = make_env(env_spec)
    try:
        return float(np.max(env.action_space.high))
    finally:
        env.close()


def make_vector_env(env_spec: EnvSpec, num_envs: int) -> SyncVectorEnv:
    """`num_envs` copies of `make_env(env_spec)` stepped in lock-step in this process."""
    return SyncVectorEnv([functools.partial(make_env, env_spec)] * num_envs)


# offrl's own envs, registered by entry point so that importing offrl.envs loads no simulator.
# Time limits of D4RL's antmaze evaluation envs: umaze 700 steps, medium and large 1000.
ANTMAZE_ENV_IDS = {
    "umaze": "offrl/AntMaze_UMaze-v0",
    "medium": "offrl/AntMaze_Medium-v0",
    "large": "offrl/AntMaze_Large-v0",
}
ANTMAZE_EPISODE_STEPS = {"umaze": 700, "medium": 1000, "large": 1000}
ANTMAZE_COLLECT_EPISODE_STEPS = 1000  # D4RL's AntMaze data: episodes of 1,000 steps, cut by time
ANT_GOAL_ENV_ID = "offrl/AntGoal-v0"
ANT_GOAL_EPISODE_STEPS = 1000  # as long as a D4RL AntMaze collection episode

for _maze, _env_id in ANTMAZE_ENV_IDS.items():
    gym.register(
        _env_id,
        entry_point="offrl.envs.antmaze:AntMazeEnv",
        kwargs={"maze": _maze},
        max_episode_steps=ANTMAZE_EPISODE_STEPS[_maze],
    )


def antmaze_collect_env_id(maze: str, goals: str) -> str:
    """The registered data collection env of a maze and goal kind (offrl.envs.antmaze)."""
    return f"offrl/AntMazeCollect_{maze}_{goals}-v0"


for _maze in ANTMAZE_ENV_IDS:
    for _goals in ("fixed", "play", "diverse"):
        gym.register(
            antmaze_collect_env_id(_maze, _goals),
            entry_point="offrl.envs.antmaze:AntMazeCollectEnv",
            kwargs={"maze": _maze, "goals": _goals},
            max_episode_steps=ANTMAZE_COLLECT_EPISODE_STEPS,
        )
gym.register(
    ANT_GOAL_ENV_ID,
    entry_point="offrl.envs.ant_goal:AntGoalEnv",
    max_episode_steps=ANT_GOAL_EPISODE_STEPS,
)
