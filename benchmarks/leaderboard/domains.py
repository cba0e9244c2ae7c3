"""Which domain a task belongs to, from the environment its name mentions."""

from __future__ import annotations

import re

from offrl.envs.families import FAMILIES

DOMAIN_OF_ENV = {name: family.domain for name, family in FAMILIES.items()}
DOMAIN_ORDER = ("locomotion", "maze", "antmaze", "other")


def task_env(task: str) -> tuple[str, list[str]] | None:
    """The environment a task name mentions and the name's words after it, or None."""
    words = re.split(r"[/_\-]", task.lower())[1:]
    for env in DOMAIN_OF_ENV:
        if env in words:
            return env, words[words.index(env) + 1 :]
    return None


def task_domain(task: str) -> str:
    """locomotion, maze, antmaze, or other."""
    found = task_env(task)
    return "other" if found is None else DOMAIN_OF_ENV[found[0]]
