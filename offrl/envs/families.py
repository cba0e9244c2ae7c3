"""The environment table: every environment family offrl knows, and what each part of offrl needs
to know about it (its domain, D4RL's evaluation env and reference returns, the env its behaviour
policies train in, the expert bar). Task names mention a family (`offrl/hopper/medium-v0` ->
hopper), by which official per-environment hyper-parameters are also looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvFamily:
    name: str
    domain: str
    """The leaderboard's grouping: locomotion, maze or antmaze."""
    d4rl_eval_env: tuple[str, dict] | None = None
    """The gymnasium env (id, kwargs) with the observation layout of D4RL's mujoco-py env."""
    d4rl_reference: tuple[float, float] | None = None
    """D4RL's REF_MIN_SCORE / REF_MAX_SCORE, shared by every dataset of the family."""
    behavior_env: str | None = None
    """The gymnasium env its SAC behaviour policies train in (offrl's own datasets)."""
    expert_min_return: float | None = None
    """The 100-episode return a shipped expert must reach."""


FAMILIES: dict[str, EnvFamily] = {
    family.name: family
    for family in (
        EnvFamily(
            "halfcheetah",
            "locomotion",
            ("HalfCheetah-v5", {}),
            (-280.178953, 12135.0),
            "HalfCheetah-v5",
            10000.0,
        ),
        EnvFamily(
            "hopper", "locomotion", ("Hopper-v5", {}), (-20.272305, 3234.3), "Hopper-v5", 3000.0
        ),
        EnvFamily(
            "walker2d",
            "locomotion",
            ("Walker2d-v5", {}),
            (1.629008, 4592.3),
            "Walker2d-v5",
            4000.0,
        ),
        # D4RL's ant is 111-dim: Ant-v4 with contact forces (v5 drops 6 of their rows); offrl's own
        # ant datasets would be made in Ant-v5.
        EnvFamily(
            "ant",
            "locomotion",
            ("Ant-v4", {"use_contact_forces": True}),
            (-325.6, 3879.7),
            "Ant-v5",
        ),
        EnvFamily("antmaze", "antmaze"),
        EnvFamily("pointmaze", "maze"),
        EnvFamily("maze2d", "maze"),
    )
}
ENV_FAMILIES = tuple(FAMILIES)
LOCOMOTION = tuple(name for name, family in FAMILIES.items() if family.domain == "locomotion")


def env_family(task: str | None) -> str | None:
    """The environment family a task name mentions, None when it mentions none ("antmaze" is a
    word of its own, so it is never taken for "ant")."""
    if task is None:
        return None
    words = re.split(r"[/_\-]", task.lower())
    return next((word for word in words if word in ENV_FAMILIES), None)
