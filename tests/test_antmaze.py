"""AntMaze under D4RL's protocol and the goal-reaching ant: dynamics constants, the ant's body, the
walls, the sparse reward, determinism, and the waypoint direction the policy sees."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import gymnasium_robotics.envs.maze.maps as robotics_maps
import mujoco
import numpy as np
import pytest

from offrl.envs import ANT_GOAL_ENV_ID, ANTMAZE_ENV_IDS
from offrl.envs.ant import CONTROL_DT, MAX_TORQUE, AntEnv
from offrl.envs.ant_goal import DIRECTION_LENGTH, WAYPOINT_DISTANCE, WAYPOINT_RADIUS
from offrl.envs.antmaze import (
    ANTMAZE_MAZES,
    CELL_SIZE,
    GOAL,
    GOAL_RADIUS,
    MAZE_MAPS,
    START,
    WALL,
    cell_xy,
    cells_marked,
)
from offrl.errors import ConfigError

ALL_IDS = (*ANTMAZE_ENV_IDS.values(), ANT_GOAL_ENV_ID)


def _ant(env_id: str) -> AntEnv:
    return gym.make(env_id).unwrapped


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_d4rl_dynamics_constants(env_id):
    env = gym.make(env_id)
    ant = env.unwrapped
    assert ant.model.opt.timestep == 0.02
    assert ant.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    env.reset(seed=0)
    env.step(np.zeros(8))
    assert ant.data.time == pytest.approx(0.1) == CONTROL_DT  # 5 physics steps per action
    # Actions in [-1, 1] become torques of up to +-30 on every motor.
    assert env.action_space.shape == (8,)
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    torque_range = ant.model.actuator_ctrlrange * ant.model.actuator_gear[:, :1]
    np.testing.assert_array_equal(torque_range, np.tile([-MAX_TORQUE, MAX_TORQUE], (8, 1)))
    assert MAX_TORQUE == 30.0
    assert env.observation_space.shape == (29,)
    env.close()


def test_time_limits_are_d4rl_antmaze_eval_envs():
    steps = {maze: gym.spec(env_id).max_episode_steps for maze, env_id in ANTMAZE_ENV_IDS.items()}
    assert steps == {"umaze": 700, "medium": 1000, "large": 1000}


def test_ant_body_is_gymnasium_ant():
    """Same bodies, joints, geoms and masses as gymnasium's ant.xml; only timestep and gear
    differ (D4RL's)."""
    assets = Path(gym.__file__).parent / "envs" / "mujoco" / "assets"
    gymnasium_ant = mujoco.MjModel.from_xml_path(str(assets / "ant.xml"))
    ant = _ant(ANT_GOAL_ENV_ID).model  # the ant alone: no walls among the world's geoms
    for field in ("body_pos", "body_quat", "body_mass", "body_inertia", "body_parentid"):
        np.testing.assert_allclose(
            getattr(ant, field), getattr(gymnasium_ant, field), err_msg=field
        )
    for field in ("jnt_type", "jnt_axis", "jnt_range", "jnt_pos", "dof_damping", "dof_armature"):
        np.testing.assert_allclose(
            getattr(ant, field), getattr(gymnasium_ant, field), err_msg=field
        )
    for field in ("geom_type", "geom_size", "geom_friction", "geom_contype", "geom_conaffinity"):
        np.testing.assert_allclose(
            getattr(ant, field), getattr(gymnasium_ant, field), err_msg=field
        )
    np.testing.assert_array_equal(ant.qpos0, gymnasium_ant.qpos0)
    np.testing.assert_array_equal(ant.actuator_trnid, gymnasium_ant.actuator_trnid)
    assert gymnasium_ant.opt.timestep == 0.01 and ant.opt.timestep == 0.02
    assert np.all(gymnasium_ant.actuator_gear[:, 0] == 150) and np.all(
        ant.actuator_gear[:, 0] == 30
    )


@pytest.mark.parametrize(
    ("maze", "robotics_map"),
    [
        ("umaze", robotics_maps.U_MAZE),
        ("medium", robotics_maps.MEDIUM_MAZE),
        ("large", robotics_maps.LARGE_MAZE),
    ],
)
def test_walls_stand_where_the_map_says(maze, robotics_map):
    rows = MAZE_MAPS[maze]
    # D4RL's maps, as gymnasium-robotics also copied them: 1 = wall.
    assert [[int(v == WALL) for v in row] for row in rows] == robotics_map
    assert len(cells_marked(rows, START)) == len(cells_marked(rows, GOAL)) == 1
    ant = _ant(ANTMAZE_ENV_IDS[maze])
    walls = [i for i in range(ant.model.ngeom) if ant.model.geom(i).name.startswith("wall_")]
    centres = sorted(tuple(ant.model.geom_pos[i][:2]) for i in walls)
    assert centres == sorted(tuple(cell_xy(rows, cell)) for cell in cells_marked(rows, WALL))
    half_sizes = ant.model.geom_size[walls]
    np.testing.assert_array_equal(
        half_sizes, np.tile([CELL_SIZE / 2, CELL_SIZE / 2, 1.0], (len(walls), 1))
    )
    np.testing.assert_array_equal(cell_xy(rows, cells_marked(rows, START)[0]), [0.0, 0.0])


def _push(ant: AntEnv, direction: tuple[int, int], steps: int = 50) -> np.ndarray:
    """Push the torso along `direction` with a steady horizontal force; where it ends up."""
    ant.reset(seed=0)
    torso = ant.model.body("torso").id
    force = 10.0 * ant.model.body_subtreemass[torso]
    for _ in range(steps):
        ant.data.xfrc_applied[torso, :2] = force * np.asarray(direction)
        ant.simulate(np.zeros(8))
    return ant.xy


def test_ant_cannot_pass_through_walls():
    """In the U-maze the start cell is walled in on three sides and open along +x to col 3."""
    maze = _ant(ANTMAZE_ENV_IDS["umaze"])
    assert _push(maze, (0, 1))[1] < CELL_SIZE / 2  # the wall cell (2, 1) above the start
    assert _push(maze, (0, -1))[1] > -CELL_SIZE / 2  # the outer wall, row 0
    assert _push(maze, (-1, 0))[0] > -CELL_SIZE / 2  # the outer wall, col 0
    assert _push(maze, (1, 0))[0] < 2.5 * CELL_SIZE  # along the corridor to the wall at col 4
    # The same push on the open floor carries the ant beyond where the far side of the wall was.
    assert _push(_ant(ANT_GOAL_ENV_ID), (0, 1))[1] > 1.5 * CELL_SIZE


def _place(ant: AntEnv, xy: np.ndarray) -> None:
    """Let the ant settle from its reset pose (its ankles start outside their limits), then
    move it, as it stands, to xy."""
    for _ in range(20):
        ant.simulate(np.zeros(8))
    ant.data.qpos[:2] = xy
    mujoco.mj_forward(ant.model, ant.data)


@pytest.mark.parametrize("maze", ANTMAZE_MAZES)
def test_reward_one_only_within_half_a_unit_of_the_goal(maze):
    env = gym.make(ANTMAZE_ENV_IDS[maze])
    ant = env.unwrapped
    rows = MAZE_MAPS[maze]
    centre = cell_xy(rows, cells_marked(rows, GOAL)[0])
    rng = np.random.default_rng(0)
    goals = []
    for k, distance in enumerate((0.0, 0.05, 1.0, 1.5, 3.0)):
        _, info = env.reset(seed=k)
        goal = info["goal"]
        goals.append(goal)
        # D4RL's goal: in the goal cell, up to 1.5 from its centre on each axis.
        assert np.all(goal - centre >= 0.0) and np.all(goal - centre <= 1.5)
        angle = rng.uniform(0, 2 * np.pi)
        _place(ant, goal + distance * np.array([np.cos(angle), np.sin(angle)]))
        _, reward, terminated, truncated, info = env.step(np.zeros(8))
        arrived = np.linalg.norm(ant.xy - goal) <= GOAL_RADIUS
        assert reward == float(arrived) and terminated == arrived == info["success"]
        assert arrived == (distance < GOAL_RADIUS)  # one step moves the standing ant < 0.4
        assert not truncated
    assert len({tuple(goal) for goal in goals}) == len(goals)  # drawn anew at every reset
    # Far from the goal, random walking earns nothing.
    env.reset(seed=0)
    rewards = [env.step(env.action_space.sample())[1] for _ in range(100)]
    assert rewards == [0.0] * 100
    env.close()


def _rollout(env_id: str, seed: int, steps: int = 60) -> np.ndarray:
    env = gym.make(env_id)
    observation, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 8))
    trajectory = [observation]
    for action in actions:
        observation, reward, terminated, _, _ = env.step(action)
        trajectory.append(np.append(observation, reward))
        if terminated:
            break
    env.close()
    return np.concatenate(trajectory)


@pytest.mark.parametrize("env_id", [ANTMAZE_ENV_IDS["umaze"], ANT_GOAL_ENV_ID])
def test_deterministic_for_a_seed(env_id):
    np.testing.assert_array_equal(_rollout(env_id, 3), _rollout(env_id, 3))
    assert not np.array_equal(_rollout(env_id, 3), _rollout(env_id, 4))


def test_maze_observation_is_the_ant_state_with_its_position():
    env = gym.make(ANTMAZE_ENV_IDS["medium"])
    observation, _ = env.reset(seed=0)
    ant = env.unwrapped
    np.testing.assert_array_equal(observation[:15], ant.data.qpos[:15])
    np.testing.assert_array_equal(observation[15:], ant.data.qvel[:14])
    assert np.all(np.abs(observation[:2]) <= 0.1)  # starts at the 'r' cell, D4RL's reset noise


def _heading_axes(ant: AntEnv) -> np.ndarray:
    """The torso's x axis laid flat on the floor, and the floor axis to its left (as rows)."""
    mujoco.mj_forward(ant.model, ant.data)  # the torso's frame at the current qpos
    torso_x = ant.data.xmat[ant.model.body("torso").id].reshape(3, 3)[:2, 0]
    ahead = torso_x / np.linalg.norm(torso_x)
    return np.stack([ahead, [-ahead[1], ahead[0]]])


def test_goal_env_direction_has_length_ten_and_points_at_the_waypoint():
    env = gym.make(ANT_GOAL_ENV_ID)
    ant = env.unwrapped
    observation, info = env.reset(seed=0)
    headings = []
    for _ in range(50):
        offset = info["waypoint"] - ant.xy
        direction = observation[-2:]
        assert np.linalg.norm(direction) == pytest.approx(DIRECTION_LENGTH)
        # Given in the ant's heading frame: back in world axes it points at the waypoint.
        axes = _heading_axes(ant)
        headings.append(axes[0])
        world = direction @ axes
        np.testing.assert_allclose(world, DIRECTION_LENGTH * offset / np.linalg.norm(offset))
        # The rest is the ant's state without its position.
        np.testing.assert_array_equal(observation[:-2], ant.ant_state()[2:])
        observation, _, terminated, _, info = env.step(env.action_space.sample())
        assert not terminated
    assert np.ptp(np.array(headings), axis=0).max() > 0.01  # the heading did change
    env.close()


def test_goal_env_rewards_progress_and_draws_a_new_waypoint_on_arrival():
    env = gym.make(ANT_GOAL_ENV_ID)
    ant = env.unwrapped
    _, info = env.reset(seed=1)
    distance = np.linalg.norm(info["waypoint"] - ant.xy)
    assert WAYPOINT_DISTANCE[0] <= distance <= WAYPOINT_DISTANCE[1]
    before = ant.xy
    _, reward, _, _, step_info = env.step(np.zeros(8))
    progress = distance - np.linalg.norm(info["waypoint"] - ant.xy)
    assert step_info["progress"] == pytest.approx(progress)
    assert reward == pytest.approx(progress / CONTROL_DT)  # no action, no control cost
    assert not np.array_equal(before, ant.xy)
    first = info["waypoint"]
    _place(ant, first + np.array([0.1, 0.0]))
    _, _, terminated, _, info = env.step(np.zeros(8))
    assert info["waypoints_reached"] == 1 and not terminated
    distance = np.linalg.norm(info["waypoint"] - ant.xy)
    assert WAYPOINT_DISTANCE[0] <= distance <= WAYPOINT_DISTANCE[1]
    assert np.linalg.norm(first - ant.xy) <= WAYPOINT_RADIUS
    env.close()


def test_goal_env_ends_when_the_ant_flips():
    env = gym.make(ANT_GOAL_ENV_ID)
    ant = env.unwrapped
    env.reset(seed=0)
    ant.data.qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # half a turn about x: on its back
    mujoco.mj_forward(ant.model, ant.data)
    _, _, terminated, _, _ = env.step(np.zeros(8))
    assert terminated
    env.close()


def test_unknown_maze_is_refused():
    with pytest.raises(ConfigError, match="Unknown AntMaze maze 'huge'"):
        gym.make("offrl/AntMaze_UMaze-v0", maze="huge")
