"""PointMaze (gymnasium-robotics) under D4RL's maze2d protocol: env ids, a fixed-goal evaluation
spec, and the expert that generates the data — a shortest-path planner on the maze's cell grid
driving a PD controller (D4RL's `waypoint_controller.py`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from offrl.errors import ConfigError

# gymnasium-robotics announces its Adroit envs on import: keep that out of offrl's output.
with contextlib.redirect_stderr(io.StringIO()):
    import gymnasium_robotics
    from gymnasium_robotics.envs.maze.maze_v4 import Maze
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

gym.register_envs(gymnasium_robotics)  # the PointMaze_*-v3 ids

POINTMAZE_MAZES = ("umaze", "medium", "large")
_ENV_NAMES = {"umaze": "PointMaze_UMaze", "medium": "PointMaze_Medium", "large": "PointMaze_Large"}

# D4RL's maze2d-{umaze,medium,large}-v1 evaluation targets (the 'G' of maze_model.U_MAZE,
# MEDIUM_MAZE, LARGE_MAZE) as (row, col); gymnasium-robotics' grids are the same row by row.
EVAL_GOAL_CELLS: dict[str, tuple[int, int]] = {"umaze": (1, 1), "medium": (6, 6), "large": (7, 9)}

# D4RL's WaypointController gains; the point (mass, gear 100, dt 0.01) is D4RL's own model.
P_GAIN = 10.0
D_GAIN = -1.0

GOAL_RADIUS = 0.45  # gymnasium-robotics' success distance (D4RL's sparse reward used 0.5)

Cell = tuple[int, int]
_MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # 4-connected grid; fixed order = fixed tie-breaks


def _check_maze(maze: str) -> None:
    if maze not in _ENV_NAMES:
        raise ConfigError(f"Unknown PointMaze maze '{maze}'. Known: {', '.join(POINTMAZE_MAZES)}.")


def pointmaze_env_id(maze: str, dense: bool) -> str:
    """The gymnasium-robotics id: PointMaze_UMaze-v3, PointMaze_LargeDense-v3, ..."""
    _check_maze(maze)
    return f"{_ENV_NAMES[maze]}{'Dense' if dense else ''}-v3"


class FixedGoalPointMazeEnv(PointMazeEnv):
    """PointMaze whose goal is exactly the centre of its single "g" cell after every reset.

    gymnasium-robotics jitters the goal by up to ±0.25 per reset; D4RL's maze2d evaluation target
    is one fixed point, so every evaluation episode (and both reference scores) chase the same goal.
    The start stays random: any free cell but the goal's, with the env's usual position noise.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # gymnasium-robotics leaves each env's generated model XML in the temp dir; evaluation
        # builds many envs, so drop it once MuJoCo has loaded the model.
        Path(self.tmp_xml_file_path).unlink(missing_ok=True)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        observation, info = super().reset(seed=seed, options=options)
        self.goal = self.maze.unique_goal_locations[0].copy()
        self.update_target_site_pos()
        observation["desired_goal"] = self.goal.copy()
        distance = np.linalg.norm(observation["achieved_goal"] - self.goal)
        info["success"] = bool(distance <= GOAL_RADIUS)
        return observation, info


def _eval_maze_map(maze_map: list[list], goal: Cell) -> list[list]:
    """The maze with its one goal cell marked "g": every other free cell is a start cell."""
    return [
        ["g" if (i, j) == goal else v for j, v in enumerate(row)] for i, row in enumerate(maze_map)
    ]


def pointmaze_eval_env_spec(maze: str, dense: bool) -> EnvSpec:
    """The registered PointMaze with D4RL's fixed evaluation goal; `gym.make(spec)` builds it.

    As D4RL's maze2d eval envs: the goal never moves (reset_target=False) and reaching it does not
    end the episode (continuing_task=True), so the return counts the steps spent at the goal
    (sparse) or sums exp(-distance) (dense) over the registered 300/600/800 steps.
    """
    spec = gym.spec(pointmaze_env_id(maze, dense))
    kwargs = {
        **spec.kwargs,
        "maze_map": _eval_maze_map(spec.kwargs["maze_map"], EVAL_GOAL_CELLS[maze]),
        "continuing_task": True,
        "reset_target": False,
    }
    return dataclasses.replace(
        spec,
        id=f"offrl/{spec.name}Eval-v{spec.version}",
        entry_point=f"{__name__}:{FixedGoalPointMazeEnv.__name__}",
        kwargs=kwargs,
    )


@dataclass(frozen=True)
class MazePlan:
    """Shortest paths on one maze's cell grid, tabulated for every (goal cell, cell) pair.

    A cell (row, col) has index row * cols + col; tables are indexed [goal index, cell index].
    Cells the goal cannot reach (walls) map to themselves, so every entry is finite. Positions are
    always inside the maze: its outer ring is wall.
    """

    next_cell: np.ndarray  # (N, N) int: index of the neighbour one step closer to the goal
    waypoint: np.ndarray  # (N, N, 2) float: xy of that neighbour's centre
    rows: int
    cols: int
    scaling: float  # cell size and map centre, to turn xy into cells as gymnasium does
    x_center: float
    y_center: float


def _successors(free: np.ndarray, goal: Cell) -> np.ndarray:
    """Breadth-first search out from the goal: each reached cell points back one step toward it.

    Returns the (rows, cols) flat index of each cell's successor.
    """
    rows, cols = free.shape
    successor = np.arange(rows * cols).reshape(rows, cols)  # unreached cells point at themselves
    seen = {goal}
    queue = collections.deque([goal] if free[goal] else [])  # a wall "goal" reaches nothing
    while queue:
        cell = queue.popleft()
        for di, dj in _MOVES:
            neighbour = (cell[0] + di, cell[1] + dj)
            if neighbour not in seen and free[neighbour]:
                seen.add(neighbour)
                successor[neighbour] = cell[0] * cols + cell[1]
                queue.append(neighbour)
    return successor


def maze_plan(maze: Maze) -> MazePlan:
    """Tabulate the shortest path from every cell to every goal cell of a gymnasium-robotics Maze.

    BFS on the 4-connected grid: a shortest path, as D4RL's Q-iteration on the same grid finds
    (where several exist, ties may break differently).
    """
    free = np.array([[cell != 1 for cell in row] for row in maze.maze_map])
    rows, cols = free.shape
    cells = [(i, j) for i in range(rows) for j in range(cols)]
    next_cell = np.stack([_successors(free, goal).ravel() for goal in cells])
    centres = np.array([maze.cell_rowcol_to_xy(cell) for cell in cells])
    return MazePlan(
        next_cell=next_cell,
        waypoint=centres[next_cell],
        rows=rows,
        cols=cols,
        scaling=float(maze.maze_size_scaling),
        x_center=float(maze.x_map_center),
        y_center=float(maze.y_map_center),
    )


def cell_index(plan: MazePlan, xy: np.ndarray) -> np.ndarray:
    """Flat cell index of positions (..., 2) inside the maze, as Maze.cell_xy_to_rowcol does."""
    row = (plan.y_center - xy[..., 1]) // plan.scaling
    col = (xy[..., 0] + plan.x_center) // plan.scaling
    return (row * plan.cols + col).astype(np.int64)


def shortest_path(plan: MazePlan, start: Cell, goal: Cell) -> list[Cell]:
    """The cells from start to goal, both included (just the start if the goal is unreachable)."""
    goal_index = goal[0] * plan.cols + goal[1]
    path = [start]
    while path[-1] != goal:
        here = path[-1][0] * plan.cols + path[-1][1]
        step = int(plan.next_cell[goal_index, here])
        if step == here:
            break
        path.append(divmod(step, plan.cols))
    return path


def controller_actions(plan: MazePlan, observations: np.ndarray) -> np.ndarray:
    """The expert's actions for flat observations (..., 6) = (x, y, vx, vy, goal_x, goal_y).

    PD control (D4RL's gains) toward the centre of the next cell on the shortest path, or toward
    the goal itself once in the goal's cell. Memoryless, unlike D4RL's waypoint list: heading for
    the next cell from wherever the point is cuts corners instead of stopping at each cell centre,
    which reaches goals sooner along the same paths.
    """
    xy, velocity, goal = observations[..., 0:2], observations[..., 2:4], observations[..., 4:6]
    cell, goal_cell = cell_index(plan, xy), cell_index(plan, goal)
    target = np.where((cell == goal_cell)[..., None], goal, plan.waypoint[goal_cell, cell])
    return np.clip(P_GAIN * (target - xy) + D_GAIN * velocity, -1.0, 1.0)
