"""Datasets: D4RL hdf5 files, Minari datasets, locally collected data, and the task registry."""

from offrl.data.collect import POLICIES, CollectInfo, collect
from offrl.data.d4rl import (
    D4RL_MAX_EPISODE_STEPS,
    D4RL_REF_SCORES,
    qlearning_dataset,
    read_d4rl_file,
)
from offrl.data.minari_io import (
    flatten_episodes,
    flatten_goal_observation,
    load_minari_arrays,
    write_minari_dataset,
)
from offrl.data.registry import (
    LoadedTask,
    Task,
    known_task_names,
    load_task,
    resolve_task,
)
from offrl.data.transitions import Transitions, checksum, from_numpy

__all__ = [
    "D4RL_MAX_EPISODE_STEPS",
    "D4RL_REF_SCORES",
    "POLICIES",
    "CollectInfo",
    "LoadedTask",
    "Task",
    "Transitions",
    "checksum",
    "collect",
    "flatten_episodes",
    "flatten_goal_observation",
    "from_numpy",
    "known_task_names",
    "load_minari_arrays",
    "load_task",
    "qlearning_dataset",
    "read_d4rl_file",
    "resolve_task",
    "write_minari_dataset",
]
