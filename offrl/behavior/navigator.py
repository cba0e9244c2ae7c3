"""The goal-reaching ant that collects AntMaze's data: how it acts under the planner, and its
success rate.

The navigator sees (ant state, waypoint) through offrl.envs.ant_goal's policy observation; the
collector adds N(0, ACTION_NOISE²) to its deterministic action, as D4RL's did.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from offrl import libm
from offrl.behavior import portable
from offrl.behavior.manifest import Params
from offrl.envs import ANTMAZE_ENV_IDS
from offrl.envs.ant import STATE_DIM
from offrl.envs.ant_goal import policy_observation
from offrl.envs.antmaze import GOAL, Planner, cells_marked
from offrl.nets import TanhGaussianActor

ACTION_NOISE = 0.2  # std of the Gaussian added to the navigator's actions (D4RL's collector)
FAMILY = "antmaze"


def navigate(actor: portable.Actor, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The collector's actions for (ant state, waypoint) observations: the navigator's
    deterministic action plus ACTION_NOISE * noise (noise ~ N(0, 1)), clipped to the bounds."""
    ant_state, waypoint = observations[..., :STATE_DIM], observations[..., STATE_DIM:]
    mean, _ = actor(policy_observation(ant_state, waypoint))
    return np.clip(libm.tanh(mean) + ACTION_NOISE * noise, -1.0, 1.0)


def success_rate(
    actor: TanhGaussianActor,
    params: Params,
    maze: str,
    episodes: int = 100,
    seed: int = 0,
) -> float:
    """The share of `episodes` evaluation episodes of `maze` (seeds seed, seed + 1, ...) in which
    the noisy navigator, steered to the evaluation goal by the planner, arrives."""
    navigator = portable.Actor.of(actor, params)
    env = gym.make(ANTMAZE_ENV_IDS[maze])
    ant = env.unwrapped
    (goal_cell,) = cells_marked(ant.rows, GOAL)
    planner = Planner(ant.rows, [goal_cell], np.random.default_rng(seed))
    arrived, steps = 0, 0
    try:
        for episode in range(episodes):
            state, info = env.reset(seed=seed + episode)
            planner.set_goal(goal_cell, info["goal"])
            done, reward = False, 0.0
            while not done:
                observation = np.concatenate([state, planner.steer(ant.xy)])[None]
                noise = portable.standard_normal(seed, steps, env.action_space.shape)
                action = navigate(navigator, observation, noise[None])[0]
                state, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
                done, steps = terminated or truncated, steps + 1
            arrived += int(reward == 1.0)
    finally:
        env.close()
    return arrived / episodes
