"""AntMaze under D4RL's protocol: D4RL's ant among box walls laid out by a maze map, starting at
the map's 'r' cell and rewarded (1) on arriving within 0.5 of a point in its 'g' cell.

Coordinates are D4RL's: cell (row, col) has its centre at ((col - r_col) * 4, (row - r_row) * 4),
so the start cell is the origin and y grows with the row. The observation is the ant's 29-dim state
(position included, goal left out). As D4RL's v2 evaluation envs, the goal is drawn anew at every
reset, in the goal cell: its centre plus U(0, 1) plus U(0, 0.5) on each axis; arriving ends the
episode, so a return is 1 (success) or 0 and the normalised score is the success rate x 100.
"""

from __future__ import annotations

import math

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

Cell = tuple[int, int]  # (row, col) of a maze map


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


def wall_centres(rows: tuple[str, ...]) -> list[tuple[float, float]]:
    """The centre of every wall cell of a maze map."""
    return [tuple(cell_xy(rows, cell)) for cell in cells_marked(rows, WALL)]


class AntMazeEnv(AntEnv):
    """D4RL's AntMaze evaluation env for one of `ANTMAZE_MAZES` (time limit set at registration)."""

    def __init__(self, maze: str):
        self.rows = maze_map(maze)
        super().__init__(wall_centres(self.rows), wall_size=CELL_SIZE)
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
        success = bool(math.hypot(*(self.xy - self.goal)) <= GOAL_RADIUS)
        info = {"goal": self.goal.copy(), "success": success}
        return self.ant_state(), float(success), success, False, info


# --- the data collector's planner and env -----------------------------------------------------

DATASET_GOALS = ("fixed", "play", "diverse")
# Collection goal cells of the "play" datasets: a few hand-picked cells spread over each maze,
# the evaluation goal's among them (D4RL hand-picked its own; their list is not reproduced here).
PLAY_GOAL_CELLS: dict[str, tuple[Cell, ...]] = {
    "umaze": ((3, 1),),
    "medium": ((1, 6), (2, 4), (4, 1), (6, 1), (6, 6)),
    "large": ((1, 10), (3, 4), (5, 8), (7, 1), (3, 10), (7, 9)),
}
WAYPOINT_NOISE = 1.0  # a waypoint is its cell's centre plus U(0, 1) on each axis, as D4RL's planner
COLLECTION_OBS_DIM = STATE_DIM + 2  # the ant's state, then the waypoint the planner set
NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def open_cells(rows: tuple[str, ...]) -> list[Cell]:
    """Every cell the ant can stand in, row by row."""
    return [(i, j) for i, row in enumerate(rows) for j, value in enumerate(row) if value != WALL]


def distances_to(rows: tuple[str, ...], goal: Cell) -> dict[Cell, int]:
    """Breadth-first search from `goal`: each reachable open cell's number of moves to it."""
    distance, frontier = {goal: 0}, [goal]
    while frontier:
        following = []
        for i, j in frontier:
            for di, dj in NEIGHBOURS:
                cell = (i + di, j + dj)
                if rows[cell[0]][cell[1]] != WALL and cell not in distance:
                    distance[cell] = distance[(i, j)] + 1
                    following.append(cell)
        frontier = following
    return distance


def next_cell(rows: tuple[str, ...], distance: dict[Cell, int], cell: Cell) -> Cell:
    """The first cell after `cell` on a shortest path to the goal `distance` was searched from
    (the cell itself once there; the first of NEIGHBOURS' order on ties)."""
    if distance[cell] == 0:
        return cell
    i, j = cell
    steps = [(i + di, j + dj) for di, dj in NEIGHBOURS]
    return min((c for c in steps if c in distance), key=lambda c: distance[c])


def xy_cell(rows: tuple[str, ...], xy: np.ndarray) -> Cell:
    """The cell a point lies in."""
    (start,) = cells_marked(rows, START)
    col, row = np.round(np.asarray(xy) / CELL_SIZE).astype(int)
    return (start[0] + int(row), start[1] + int(col))


def evaluation_goal_point(rows: tuple[str, ...]) -> np.ndarray:
    """The point dataset rewards are relabelled against: the mean of the evaluation env's goal."""
    (goal_cell,) = cells_marked(rows, GOAL)
    return cell_xy(rows, goal_cell) + CELL_SIZE / 8 + CELL_SIZE / 16


class Planner:
    """D4RL's waypoint planner: in the goal's cell, aim at the goal; elsewhere at the next cell of a
    breadth-first shortest path, its centre plus U(0, WAYPOINT_NOISE) drawn anew for each cell."""

    def __init__(self, rows: tuple[str, ...], goal_cells: list[Cell], rng: np.random.Generator):
        self.rows, self.rng = rows, rng
        self.open = open_cells(rows)
        self.distances = {cell: distances_to(rows, cell) for cell in goal_cells}
        self.goal_cell, self.goal = goal_cells[0], cell_xy(rows, goal_cells[0])
        self.waypoint_cell: Cell | None = None
        self.waypoint = self.goal

    def noisy_point(self, cell: Cell) -> np.ndarray:
        return cell_xy(self.rows, cell) + self.rng.uniform(0.0, WAYPOINT_NOISE, 2)

    def set_goal(self, cell: Cell, point: np.ndarray) -> None:
        self.goal_cell, self.goal, self.waypoint_cell = cell, point, None

    def steer(self, xy: np.ndarray) -> np.ndarray:
        """The waypoint for an ant at `xy`."""
        here = xy_cell(self.rows, xy)
        distance = self.distances[self.goal_cell]
        if here not in distance:  # pressed into a wall's cell: plan from the nearest open cell
            here = min(self.open, key=lambda c: math.hypot(*(cell_xy(self.rows, c) - xy)))
        target = next_cell(self.rows, distance, here)
        if target == self.goal_cell:
            self.waypoint_cell, self.waypoint = target, self.goal
        elif target != self.waypoint_cell:
            self.waypoint_cell, self.waypoint = target, self.noisy_point(target)
        return self.waypoint


class AntMazeCollectEnv(AntEnv):
    """D4RL's AntMaze data collection for one maze (time limit set at registration).

    Each episode draws a start (the 'r' cell for umaze; any open cell in medium and large) and a
    goal (`goals`: the evaluation goal cell, one of PLAY_GOAL_CELLS, or any open cell; a point in
    it as the planner draws waypoints), and the Planner steers. A goal reached gives way to a new
    one. The observation is the ant's state and the waypoint (the collector's policy needs it;
    datasets keep only the state); the reward is 1 within 0.5 of `evaluation_goal_point`, and
    nothing ends an episode but the time limit.
    """

    def __init__(self, maze: str, goals: str):
        if goals not in DATASET_GOALS:
            raise ConfigError(f"Unknown goal kind '{goals}'. Known: {', '.join(DATASET_GOALS)}.")
        self.rows = maze_map(maze)
        super().__init__(wall_centres(self.rows), wall_size=CELL_SIZE)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (COLLECTION_OBS_DIM,), np.float64)
        self.maze = maze
        self.goal_cells = {
            "fixed": cells_marked(self.rows, GOAL),
            "play": list(PLAY_GOAL_CELLS[maze]),
            "diverse": open_cells(self.rows),
        }[goals]
        self.reward_point = evaluation_goal_point(self.rows)
        self.planner = Planner(self.rows, self.goal_cells, self.np_random)
        self.goals_reached = 0

    def _new_goal(self) -> None:
        cell = self.goal_cells[self.np_random.integers(len(self.goal_cells))]
        self.planner.set_goal(cell, self.planner.noisy_point(cell))

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.ant_state(), self.planner.steer(self.xy)])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.planner.rng = self.np_random
        starts = cells_marked(self.rows, START) if self.maze == "umaze" else open_cells(self.rows)
        start = starts[self.np_random.integers(len(starts))]
        self.place_ant(cell_xy(self.rows, start))
        self.goals_reached = 0
        self._new_goal()
        return self._observation(), {"goal": self.planner.goal.copy()}

    def step(self, action: np.ndarray):
        self.simulate(action)
        reward = float(math.hypot(*(self.xy - self.reward_point)) <= GOAL_RADIUS)
        if math.hypot(*(self.xy - self.planner.goal)) <= GOAL_RADIUS:
            self.goals_reached += 1
            self._new_goal()
        info = {"goal": self.planner.goal.copy(), "goals_reached": self.goals_reached}
        return self._observation(), reward, False, False, info
