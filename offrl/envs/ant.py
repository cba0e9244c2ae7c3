"""D4RL's AntMaze ant: gymnasium's Ant body under D4RL's dynamics, as MJCF built here, with the
env base that AntMaze and the goal-reaching training env share.

D4RL's dynamics differ from gymnasium's Ant-v5: a 0.02 s RK4 timestep with 5 substeps per action
(10 Hz control, not 20 Hz) and torques up to 30 (not 150). Actions stay in [-1, 1], as D4RL's
collector clips them, and the motors' gear of 30 turns them into torques of up to +-30.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import mujoco
import numpy as np

from offrl import libm

TIMESTEP = 0.02
FRAME_SKIP = 5
CONTROL_DT = TIMESTEP * FRAME_SKIP  # 0.1 s: D4RL's 10 Hz
MAX_TORQUE = 30.0
ACTION_DIM = 8
TORSO_HEIGHT = 0.75  # the torso's height in the model's reference pose
POSITION_NOISE = 0.1  # D4RL's reset: qpos + U(-0.1, 0.1), qvel + 0.1 * N(0, 1)
VELOCITY_NOISE = 0.1
STATE_DIM = 29  # qpos[:15] (torso xyz, quaternion, 8 joints) and qvel[:14]; no contact forces


@dataclass(frozen=True)
class Leg:
    """One of gymnasium's four ant legs: hip (yaw) joint, then ankle joint, along a diagonal."""

    number: int
    direction: tuple[int, int]  # the diagonal the leg points along, (+-1, +-1)
    ankle_axis: tuple[int, int, int]
    ankle_range: tuple[int, int]  # degrees


LEGS = (
    Leg(1, (1, 1), (-1, 1, 0), (30, 70)),
    Leg(2, (-1, 1), (1, 1, 0), (-70, -30)),
    Leg(3, (-1, -1), (-1, 1, 0), (-70, -30)),
    Leg(4, (1, -1), (1, 1, 0), (30, 70)),
)
ACTUATED_LEGS = (4, 1, 2, 3)  # gymnasium's actuator order: hip then ankle of legs 4, 1, 2, 3
HIP_RANGE = (-30, 30)  # degrees
LIMB_RADIUS = 0.08


def _numbers(*values: float) -> str:
    return " ".join(f"{v:g}" for v in values)


def _segment(body: ET.Element, name: str, dx: float, dy: float) -> None:
    """A capsule from the body's origin to (dx, dy, 0)."""
    ET.SubElement(
        body,
        "geom",
        name=name,
        type="capsule",
        fromto=_numbers(0, 0, 0, dx, dy, 0),
        size=_numbers(LIMB_RADIUS),
    )


def _add_leg(torso: ET.Element, leg: Leg) -> None:
    dx, dy = leg.direction
    base = ET.SubElement(torso, "body", name=f"leg_{leg.number}", pos="0 0 0")
    _segment(base, f"aux_{leg.number}_geom", 0.2 * dx, 0.2 * dy)
    hip = ET.SubElement(base, "body", name=f"aux_{leg.number}", pos=_numbers(0.2 * dx, 0.2 * dy, 0))
    ET.SubElement(
        hip,
        "joint",
        name=f"hip_{leg.number}",
        type="hinge",
        axis="0 0 1",
        pos="0 0 0",
        range=_numbers(*HIP_RANGE),
    )
    _segment(hip, f"leg_{leg.number}_geom", 0.2 * dx, 0.2 * dy)
    ankle = ET.SubElement(
        hip, "body", name=f"foot_{leg.number}", pos=_numbers(0.2 * dx, 0.2 * dy, 0)
    )
    ET.SubElement(
        ankle,
        "joint",
        name=f"ankle_{leg.number}",
        type="hinge",
        axis=_numbers(*leg.ankle_axis),
        pos="0 0 0",
        range=_numbers(*leg.ankle_range),
    )
    _segment(ankle, f"ankle_{leg.number}_geom", 0.4 * dx, 0.4 * dy)


def _add_ant(worldbody: ET.Element) -> None:
    torso = ET.SubElement(worldbody, "body", name="torso", pos=_numbers(0, 0, TORSO_HEIGHT))
    ET.SubElement(torso, "geom", name="torso_geom", type="sphere", pos="0 0 0", size="0.25")
    # The free root joint carries no armature or damping (the legs' defaults would slow it).
    ET.SubElement(
        torso,
        "joint",
        name="root",
        type="free",
        pos="0 0 0",
        armature="0",
        damping="0",
        limited="false",
        margin="0.01",
    )
    for leg in LEGS:
        _add_leg(torso, leg)


def ant_xml(walls: Sequence[tuple[float, float]] = (), wall_size: float = 4.0) -> str:
    """The MJCF of the ant on a plane, with a box wall of `wall_size` square centred at each
    (x, y) of `walls`, as tall as D4RL's maze blocks (half the cell size)."""
    root = ET.Element("mujoco", model="ant")
    ET.SubElement(root, "compiler", angle="degree", inertiafromgeom="true")
    ET.SubElement(root, "option", integrator="RK4", timestep=_numbers(TIMESTEP))
    default = ET.SubElement(root, "default")
    ET.SubElement(default, "joint", armature="1", damping="1", limited="true")
    # Ant geoms collide with the floor and walls (conaffinity 1) but not with each other.
    ET.SubElement(
        default,
        "geom",
        conaffinity="0",
        condim="3",
        density="5.0",
        friction="1 0.5 0.5",
        margin="0.01",
        rgba="0.8 0.6 0.4 1",
    )
    worldbody = ET.SubElement(root, "worldbody")
    ET.SubElement(
        worldbody,
        "geom",
        name="floor",
        type="plane",
        pos="0 0 0",
        size="40 40 40",
        conaffinity="1",
        condim="3",
        rgba="0.8 0.9 0.8 1",
    )
    _add_ant(worldbody)
    half, height = wall_size / 2, wall_size / 4
    for k, (x, y) in enumerate(walls):
        ET.SubElement(
            worldbody,
            "geom",
            name=f"wall_{k}",
            type="box",
            pos=_numbers(x, y, height),
            size=_numbers(half, half, height),
            contype="1",
            conaffinity="1",
            rgba="0.4 0.4 0.4 1",
        )
    actuator = ET.SubElement(root, "actuator")
    for number in ACTUATED_LEGS:
        for joint in (f"hip_{number}", f"ankle_{number}"):
            ET.SubElement(
                actuator,
                "motor",
                joint=joint,
                ctrllimited="true",
                ctrlrange="-1 1",
                gear=_numbers(MAX_TORQUE),
            )
    return ET.tostring(root, encoding="unicode")


class AntEnv(gym.Env[np.ndarray, np.ndarray]):
    """The ant in a world of `walls`; subclasses add the task (observation, reward, reset)."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, walls: Sequence[tuple[float, float]] = (), wall_size: float = 4.0):
        self.model = mujoco.MjModel.from_xml_string(ant_xml(walls, wall_size))
        self.data = mujoco.MjData(self.model)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._reference_qpos = self.data.qpos.copy()

    @property
    def xy(self) -> np.ndarray:
        """The torso's position on the floor."""
        return self.data.qpos[:2].copy()

    def ant_state(self) -> np.ndarray:
        """D4RL's 29-dim ant observation: qpos[:15] (x, y included) and qvel[:14]."""
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]])

    def place_ant(self, xy: np.ndarray) -> None:
        """D4RL's reset noise around the reference pose, with the torso moved to `xy`."""
        mujoco.mj_resetData(self.model, self.data)
        nq, nv = self.model.nq, self.model.nv
        qpos = self._reference_qpos + self.np_random.uniform(-POSITION_NOISE, POSITION_NOISE, nq)
        qpos[:2] += xy
        self.data.qpos[:] = qpos
        self.data.qvel[:] = VELOCITY_NOISE * self.np_random.standard_normal(nv)
        mujoco.mj_forward(self.model, self.data)

    def simulate(self, action: np.ndarray) -> None:
        """One control step: the action held for FRAME_SKIP physics steps."""
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)

    def upright(self) -> bool:
        """Whether the torso's up axis still points above the horizon (the ant has not flipped)."""
        return bool(is_upright(self.data.qpos[3:7]))


# Quaternions (w, x, y, z) on the last axis, of any norm: reset noise leaves qpos's unnormalised,
# and MuJoCo normalises them only where it uses them.


def is_upright(quaternion: np.ndarray) -> np.ndarray:
    """Whether the body's z axis points above the horizon."""
    w, x, y, z = (quaternion[..., k] for k in range(4))
    return w * w - x * x - y * y + z * z > 0.0


def yaw(quaternion: np.ndarray) -> np.ndarray:
    """The heading: the angle of the body's x axis laid flat on the floor."""
    w, x, y, z = (quaternion[..., k] for k in range(4))
    return libm.atan2(2.0 * (w * z + x * y), w * w + x * x - y * y - z * z)
