"""The goal-reaching ant that collects AntMaze's data: how it acts under the planner, and its
success rate.

The navigator sees (ant state, waypoint) through offrl.envs.ant_goal's policy observation; the
collector adds N(0, ACTION_NOISE²) to its deterministic action, as D4RL's did.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from offrl.behavior.manifest import Params
from offrl.envs import ANTMAZE_ENV_IDS
from offrl.envs.ant import STATE_DIM
from offrl.envs.ant_goal import policy_observation
from offrl.envs.antmaze import GOAL, Planner, cells_marked
from offrl.nets import TanhGaussianActor

ACTION_NOISE = 0.2  # std of the Gaussian added to the navigator's actions (D4RL's collector)
FAMILY = "antmaze"


def navigate(params: Params, apply_fn, observations: jax.Array, key: jax.Array) -> jax.Array:
    """The collector's actions for (ant state, waypoint) observations: the navigator's
    deterministic action plus N(0, ACTION_NOISE²), clipped to the action bounds."""
    ant_state, waypoint = observations[..., :STATE_DIM], observations[..., STATE_DIM:]
    mean, _ = apply_fn(params, policy_observation(ant_state, waypoint, jnp))
    noise = ACTION_NOISE * jax.random.normal(key, mean.shape)
    return jnp.clip(jnp.tanh(mean) + noise, -1.0, 1.0)


def success_rate(
    actor: TanhGaussianActor,
    params: Params,
    maze: str,
    episodes: int = 100,
    seed: int = 0,
) -> float:
    """The share of `episodes` evaluation episodes of `maze` (seeds seed, seed + 1, ...) in which
    the noisy navigator, steered to the evaluation goal by the planner, arrives."""
    act = jax.jit(lambda obs, key: navigate(params, actor.apply, obs, key))
    env = gym.make(ANTMAZE_ENV_IDS[maze])
    ant = env.unwrapped
    (goal_cell,) = cells_marked(ant.rows, GOAL)
    planner = Planner(ant.rows, [goal_cell], np.random.default_rng(seed))
    key = jax.random.PRNGKey(seed)
    arrived = 0
    try:
        for episode in range(episodes):
            state, info = env.reset(seed=seed + episode)
            planner.set_goal(goal_cell, info["goal"])
            done, reward = False, 0.0
            while not done:
                observation = np.concatenate([state, planner.steer(ant.xy)])
                key, step_key = jax.random.split(key)
                state, reward, terminated, truncated, _ = env.step(
                    np.asarray(act(observation, step_key))
                )
                done = terminated or truncated
            arrived += int(reward == 1.0)
    finally:
        env.close()
    return arrived / episodes
