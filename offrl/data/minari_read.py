"""Reading cached Minari datasets: their metadata, their episodes flattened to transitions, and
the raw episodes offrl wrote. Nothing here downloads: a dataset that is not in the cache is
reported, never fetched."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.episode_data import EpisodeData
from minari.dataset.minari_storage import MinariStorage

from offrl.data.minari_cache import MINARI_HDF5_FILE, minari_dataset_path
from offrl.envs import flatten_goal_observation, is_goal_space
from offrl.errors import DatasetError
from offrl.progress import advancing, step_bar

_COLLECT_HINT = (
    "offrl data collect --env Hopper-v5 --policy random --steps 100000 --dataset-id {id}"
)


@dataclass(frozen=True)
class MinariInfo:
    """What the metadata of a cached dataset says, without reading its episodes."""

    dataset_id: str
    path: Path
    eval_env_spec: EnvSpec | None  # the stored evaluation env, else the collection env
    ref_min_score: float | None
    ref_max_score: float | None
    total_steps: int
    total_episodes: int
    metadata: dict


def _missing_message(dataset_id: str, path: Path) -> str:
    return (
        f"Minari dataset '{dataset_id}' is not in the local Minari cache: looked for "
        f"{path / 'data'} "
        "(cache root from $MINARI_DATASETS_PATH, else ~/.minari/datasets). Get it with "
        f"`minari download {dataset_id}` (needs network) and keep it in that cache, or generate a "
        f"real dataset locally with `{_COLLECT_HINT.format(id=dataset_id)}`."
    )


def _parse_env_spec(spec_json: str) -> EnvSpec:
    """EnvSpec from stored JSON, dropping fields older or newer gymnasium versions wrote."""
    fields = {field.name for field in dataclasses.fields(EnvSpec)}
    stored = json.loads(spec_json)
    return EnvSpec.from_json(json.dumps({k: v for k, v in stored.items() if k in fields}))


def read_minari_info(dataset_id: str) -> MinariInfo:
    """Metadata of a cached dataset; DatasetError if it is missing or its metadata is unreadable."""
    path = minari_dataset_path(dataset_id)
    if not (path / "data" / "metadata.json").is_file():
        raise DatasetError(_missing_message(dataset_id, path))
    try:
        metadata = MinariStorage.read_raw_metadata(path / "data")
        spec_json = metadata.get("eval_env_spec") or metadata.get("env_spec")
        eval_env_spec = _parse_env_spec(spec_json) if spec_json else None
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"The metadata of Minari dataset '{dataset_id}' at {path / 'data'} cannot be read "
            f"({error}): the dataset is corrupt; delete the folder and download or generate it "
            "again."
        ) from error
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    has_ref = ref_min is not None and ref_max is not None
    return MinariInfo(
        dataset_id=dataset_id,
        path=path,
        eval_env_spec=eval_env_spec,
        ref_min_score=float(ref_min) if has_ref else None,
        ref_max_score=float(ref_max) if has_ref else None,
        total_steps=int(metadata.get("total_steps", 0)),
        total_episodes=int(metadata.get("total_episodes", 0)),
        metadata=metadata,
    )


@dataclass(frozen=True)
class MinariArrays:
    """Transitions of every episode, concatenated in episode order, plus where episodes start."""

    arrays: dict[str, np.ndarray]  # keyed like Transitions, dtypes as stored
    episode_lengths: np.ndarray
    episode_ids: np.ndarray


def flatten_episodes(episodes: Iterable[EpisodeData]) -> MinariArrays:
    """Episodes -> transitions: next observation = obs[t + 1]; done = termination, never truncation.

    Goal-conditioned Dict observations become concat(observation, desired_goal).
    """
    columns: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "dones")
    }
    lengths, ids = [], []
    for episode in episodes:
        steps = len(episode)
        observations = np.asarray(flatten_goal_observation(episode.observations))
        if observations.shape[0] != steps + 1:
            raise DatasetError(
                f"Episode {episode.id} has {observations.shape[0]} observations for {steps} "
                "steps (expected one more than steps): the dataset is corrupt."
            )
        columns["observations"].append(observations[:-1])
        columns["next_observations"].append(observations[1:])
        columns["actions"].append(np.asarray(episode.actions).reshape(steps, -1))
        columns["rewards"].append(np.asarray(episode.rewards).reshape(steps))
        columns["dones"].append(np.asarray(episode.terminations).reshape(steps))
        lengths.append(steps)
        ids.append(episode.id)
    if not lengths:
        raise DatasetError("The dataset holds no episodes.")
    return MinariArrays(
        arrays={key: np.concatenate(parts) for key, parts in columns.items()},
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        episode_ids=np.asarray(ids, dtype=np.int64),
    )


def _check_spaces(dataset_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """offrl trains on continuous vectors: Box observations (or goal Dicts) and Box actions."""
    flat_obs = isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1
    if not (flat_obs or is_goal_space(observation_space)):
        raise DatasetError(
            f"Minari dataset '{dataset_id}' has observation space {observation_space}; offrl "
            "supports 1-D Box observations and goal-conditioned Dict(observation, desired_goal)."
        )
    if not isinstance(action_space, gym.spaces.Box):
        raise DatasetError(
            f"Minari dataset '{dataset_id}' has action space {action_space}; offrl's agents need "
            "continuous (Box) actions."
        )


def load_minari_arrays(dataset_id: str) -> MinariArrays:
    """Read every episode of a cached dataset through `minari.load_dataset` (never downloads)."""
    info = read_minari_info(dataset_id)
    try:
        dataset = minari.load_dataset(dataset_id)
        _check_spaces(dataset_id, dataset.observation_space, dataset.action_space)
        with step_bar(f"reading {dataset_id}", dataset.total_episodes, "episode") as bar:
            return flatten_episodes(advancing(dataset.iterate_episodes(), bar))
    except (OSError, ValueError, KeyError, RuntimeError, AssertionError) as error:
        raise DatasetError(
            f"Minari dataset '{dataset_id}' at {info.path / 'data'} cannot be read ({error!r}): "
            "it is truncated or corrupt; delete the folder and download or generate it again."
        ) from error


def read_episode_buffers(dataset_id: str) -> list[EpisodeBuffer]:
    """The episodes of a cached dataset with flat observations, exactly as
    `offrl.data.minari_write` wrote them (arrays, dtypes and reset seeds), ready to be written
    again."""
    path = minari_dataset_path(dataset_id) / "data" / MINARI_HDF5_FILE
    fields = ("observations", "actions", "rewards", "terminations", "truncations")
    with h5py.File(path, "r") as file:
        episodes = []
        for episode_id in range(len(file)):
            group = file[f"episode_{episode_id}"]
            seed = group.attrs.get("seed")
            arrays = {name: group[name][()] for name in fields}
            episodes.append(EpisodeBuffer(seed=None if seed is None else int(seed), **arrays))
    return episodes
