"""The goal-reaching ant that AntMaze's data is collected with, as an env to train it with SAC.

D4RL's ant on an open floor, starting at the origin, walks to random waypoints; one is drawn anew
each time the last is reached, so an episode practises many. The policy sees the ant's state
without its position (27 dims) and the direction to the waypoint scaled to length 10, never the
distance, as D4RL's collector gave its policy; but the direction is turned into the ant's heading
frame (x ahead of the torso, y to its left), so one gait serves every heading. The reward is the
speed toward the waypoint less a small control cost; the episode ends if the ant flips over.

Why these choices (SAC, seed 0, measured by the evaluation return, 10 units per unit closed): with
the direction in world axes, a survival bonus of 1 and a control cost of 0.1 or 0.01, the ant stood
still for 70k-100k steps; without the bonus it still barely moved by 70k; in the heading frame it
closed 69 units per 100-second episode by 70k.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from offrl import libm
from offrl.envs.ant import CONTROL_DT, STATE_DIM, AntEnv, yaw

DIRECTION_LENGTH = 10.0  # D4RL's collector scales the direction to its waypoint to length 10
WAYPOINT_DISTANCE = (1.0, 6.0)  # a new waypoint lies this far from the ant: up to 1.5 maze cells
WAYPOINT_RADIUS = 0.5  # reached as AntMaze's goal is
# Per unit of squared action. Small, so that a first slow gait pays better than standing still:
# at 0.1, full actions cost 0.8 a step, more than the ant's first gaits make in units/s.
CONTROL_COST = 0.01
POLICY_OBS_DIM = STATE_DIM  # 27 state dims without x, y, plus the 2-dim direction


def waypoint_direction(ant_state: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
    """The direction from D4RL ant state(s) to waypoint(s), in the ant's heading frame, scaled to
    DIRECTION_LENGTH (last axis); the same bits on every CPU (offrl.libm)."""
    offset = waypoint - ant_state[..., :2]
    distance = libm.hypot(offset[..., 0], offset[..., 1])[..., None]
    world = DIRECTION_LENGTH * offset / np.maximum(distance, 1e-8)
    heading = yaw(ant_state[..., 3:7])
    cos, sin = libm.cos(heading), libm.sin(heading)
    ahead = cos * world[..., 0] + sin * world[..., 1]
    left = cos * world[..., 1] - sin * world[..., 0]
    return np.stack([ahead, left], axis=-1)


def policy_observation(ant_state: np.ndarray, waypoint: np.ndarray) -> np.ndarray:
    """The goal-reaching policy's input from D4RL's 29-dim ant state(s) and waypoint(s)."""
    direction = waypoint_direction(ant_state, waypoint)
    return np.concatenate([ant_state[..., 2:], direction], axis=-1)


class AntGoalEnv(AntEnv):
    """Waypoint after waypoint on an open floor (time limit set at registration)."""

    def __init__(self):
        super().__init__()
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (POLICY_OBS_DIM,), np.float64)
        self.waypoint = np.zeros(2)
        self.waypoints_reached = 0

    def _new_waypoint(self) -> None:
        angle = self.np_random.uniform(0.0, 2 * np.pi)
        distance = self.np_random.uniform(*WAYPOINT_DISTANCE)
        self.waypoint = self.xy + distance * np.array([math.cos(angle), math.sin(angle)])

    def _info(self, progress: float) -> dict:
        return {
            "waypoint": self.waypoint.copy(),
            "waypoints_reached": self.waypoints_reached,
            "progress": progress,
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.place_ant(np.zeros(2))
        self.waypoints_reached = 0
        self._new_waypoint()
        return policy_observation(self.ant_state(), self.waypoint), self._info(0.0)

    def step(self, action: np.ndarray):
        before = math.hypot(*(self.waypoint - self.xy))
        self.simulate(action)
        after = math.hypot(*(self.waypoint - self.xy))
        progress = float(before - after)
        reward = progress / CONTROL_DT - CONTROL_COST * float(np.sum(np.square(action)))
        if after <= WAYPOINT_RADIUS:
            self.waypoints_reached += 1
            self._new_waypoint()
        observation = policy_observation(self.ant_state(), self.waypoint)
        return observation, reward, not self.upright(), False, self._info(progress)
