"""Environment families: the names task names mention (`offrl/hopper/medium-v0` -> hopper), by
which official per-environment hyper-parameters are looked up."""

from __future__ import annotations

import re

ENV_FAMILIES = ("halfcheetah", "hopper", "walker2d", "ant", "antmaze", "pointmaze", "maze2d")


def env_family(task: str | None) -> str | None:
    """The environment family a task name mentions, None when it mentions none."""
    if task is None:
        return None
    words = re.split(r"[/_\-]", task.lower())
    return next((word for word in words if word in ENV_FAMILIES), None)
