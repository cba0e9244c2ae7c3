"""AntMaze under D4RL's protocol: D4RL's ant among box walls laid out by a maze map, starting at
the map's 'r' cell and rewarded (1) on arriving within 0.5 of a point in its 'g' cell.

Coordinates are D4RL's: cell (row, col) has its centre at ((col - r_col) * 4, (row - r_row) * 4),
so the start cell is the origin and y grows with the row. The observation is the ant's 29-dim state
(position included, goal left out). As D4RL's v2 evaluation envs, the goal is drawn anew at every
reset, in the goal cell: its centre plus U(0, 1) plus U(0, 0.5) on each axis; arriving ends the
episode, so a return is 1 (success) or 0 and the normalised score is the success rate x 100.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from offrl.envs.ant import STATE_DIM, AntEnv
from offrl.errors import ConfigError

CELL_SIZE = 4.0  # D4RL's maze_size_scaling
GOAL_RADIUS = 0.5
WALL, START, GOAL = "1", "r", "g"

# D4RL's evaluation maps (U_MAZE_TEST, BIG_MAZE_TEST, HARDEST_MAZE_TEST), one string per row.
MAZE_MAPS: dict[str, tuple[str, ...]] = {
    "umaze": (
        "11111",
        "1r001",
        "11101",
        "1g001",
        "11111",
    ),
    "medium": (
        "11111111",
        "1r011001",
        "10010001",
        "11000111",
        "10010001",
        "10100101",
        "100010g1",
        "11111111",
    ),
    "large": (
        "111111111111",
        "1r0001000001",
        "101101010101",
        "100000010001",
        "101111011101",
        "100101000001",
        "110101010111",
        "100100010g01",
        "111111111111",
    ),
}
ANTMAZE_MAZES = tuple(MAZE_MAPS)

Cell = tuple[int, int]


def maze_map(maze: str) -> tuple[str, ...]:
    if maze not in MAZE_MAPS:
        raise ConfigError(f"Unknown AntMaze maze '{maze}'. Known: {', '.join(ANTMAZE_MAZES)}.")
    return MAZE_MAPS[maze]


def cells_marked(rows: tuple[str, ...], mark: str) -> list[Cell]:
    """The (row, col) of every cell holding `mark`, row by row."""
    return [(i, j) for i, row in enumerate(rows) for j, value in enumerate(row) if value == mark]


def cell_xy(rows: tuple[str, ...], cell: Cell) -> np.ndarray:
    """The centre of a cell in D4RL's coordinates: the start cell's centre is the origin."""
    (start,) = cells_marked(rows, START)
    return CELL_SIZE * np.array([cell[1] - start[1], cell[0] - start[0]], dtype=np.float64)


class AntMazeEnv(AntEnv):
    """D4RL's AntMaze evaluation env for one of `ANTMAZE_MAZES` (time limit set at registration)."""

    def __init__(self, maze: str):
        self.rows = maze_map(maze)
        walls = [tuple(cell_xy(self.rows, cell)) for cell in cells_marked(self.rows, WALL)]
        super().__init__(walls, wall_size=CELL_SIZE)
        self.maze = maze
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float64)
        (self.goal_cell,) = cells_marked(self.rows, GOAL)
        self.goal = cell_xy(self.rows, self.goal_cell)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.place_ant(np.zeros(2))
        # D4RL's goal sampler: a uniform offset of up to a quarter cell, then up to an eighth.
        offset = self.np_random.uniform(0.0, CELL_SIZE / 4, 2)
        offset += self.np_random.uniform(0.0, CELL_SIZE / 8, 2)
        self.goal = cell_xy(self.rows, self.goal_cell) + offset
        return self.ant_state(), {"goal": self.goal.copy(), "success": False}

    def step(self, action: np.ndarray):
        self.simulate(action)
        success = bool(np.linalg.norm(self.xy - self.goal) <= GOAL_RADIUS)
        info = {"goal": self.goal.copy(), "success": success}
        return self.ant_state(), float(success), success, False, info
