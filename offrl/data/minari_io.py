"""Minari datasets in the local cache: metadata, episodes flattened to transitions, atomic writes.

The cache root is `$MINARI_DATASETS_PATH` (read at call time) or `~/.minari/datasets`. Nothing
here downloads: a dataset that is not in the cache is reported, never fetched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.episode_data import EpisodeData
from minari.dataset.minari_dataset import DATASET_ID_RE
from minari.dataset.minari_storage import MinariStorage
from minari.namespace import create_namespace, list_local_namespaces
from minari.storage import get_dataset_path

from offrl.data.staging import (
    REPLACED,
    check_space,
    remove_abandoned_staging,
    staging_folder,
)
from offrl.envs import flatten_goal_observation, is_goal_space
from offrl.errors import DatasetError

__all__ = [
    "CHECKSUM_KEY",
    "MinariArrays",
    "MinariInfo",
    "check_status",
    "check_writable",
    "flatten_episodes",
    "flatten_goal_observation",
    "load_minari_arrays",
    "local_dataset_ids",
    "minari_dataset_path",
    "minari_root",
    "read_minari_info",
    "record_check",
    "validate_dataset_id",
    "write_minari_dataset",
]

MINARI_HDF5_FILE = "main_data.hdf5"
"""The file in a Minari HDF5 dataset's `data/` folder that holds the episodes and metadata."""
CHECKSUM_KEY = "offrl_checksum"
"""Metadata key: `transitions.checksum` of what the loader returns, recorded when offrl wrote it."""
_CHECK_STAMP = ".offrl-check.json"
"""Beside `data/`: the last verification's result and the file sizes and times it applies to."""

_COLLECT_HINT = "offrl data collect --env Hopper-v5 --policy random --steps 100000 --out {id}"


def minari_root() -> Path:
    """The local Minari cache root (created if missing, as minari itself does)."""
    return Path(get_dataset_path())


def validate_dataset_id(dataset_id: str) -> str:
    """Accept `[namespace/]name-v<N>` ids only; minari itself crashes on ids without a version."""
    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None or "//" in dataset_id:
        fixed = f"{dataset_id}-v0" if match is not None and "//" not in dataset_id else None
        example = f" such as '{fixed}'" if fixed else ", e.g. 'local/hopper-random-v0'"
        raise DatasetError(
            f"'{dataset_id}' is not a valid Minari dataset id: ids look like "
            "[namespace/]name-v<N> (letters, digits, '-' and '_'; namespaces of two or more "
            f"characters, '/'-separated) and must end with a version suffix -v<N>. "
            f"Use an id{example}."
        )
    return dataset_id


def minari_dataset_path(dataset_id: str) -> Path:
    """Folder of a dataset in the cache (its arrays and metadata live under `data/`)."""
    return minari_root() / validate_dataset_id(dataset_id)


def local_dataset_ids() -> list[str]:
    """Ids of every dataset in the local cache, sorted."""
    return sorted(minari.list_local_datasets())


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
        return flatten_episodes(dataset.iterate_episodes())
    except (OSError, ValueError, KeyError, RuntimeError, AssertionError) as error:
        raise DatasetError(
            f"Minari dataset '{dataset_id}' at {info.path / 'data'} cannot be read ({error!r}): "
            "it is truncated or corrupt; delete the folder and download or generate it again."
        ) from error


def _already_exists(dataset_id: str, path: Path) -> DatasetError:
    return DatasetError(
        f"Minari dataset '{dataset_id}' already exists at {path}. Choose another id (e.g. bump "
        "the -v<N> suffix), or pass overwrite (`--overwrite`) to replace it."
    )


def check_writable(dataset_id: str, overwrite: bool) -> Path:
    """Validate the id and refuse an existing dataset unless overwriting; returns its folder."""
    path = minari_dataset_path(dataset_id)
    if path.exists() and not overwrite:
        raise _already_exists(dataset_id, path)
    return path


def _move_into_place(staged: Path, target: Path, dataset_id: str, overwrite: bool) -> None:
    """Rename the staged folder onto the target; an overwritten dataset is swapped out first, to
    `<staged>-replaced` (covered by the staging folder's writer lock until it is removed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.replace(staged, target)
        except OSError as error:  # another writer got there first
            raise _already_exists(dataset_id, target) from error
        return
    if not overwrite:
        raise _already_exists(dataset_id, target)
    retired = staged.with_name(f"{staged.name}{REPLACED}")
    os.replace(target, retired)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(retired, target)  # put the old dataset back: never leave the id empty
        raise
    shutil.rmtree(retired, ignore_errors=True)


def write_minari_dataset(
    dataset_id: str,
    episode_buffers: Sequence[EpisodeBuffer],
    env: gym.Env,
    *,
    eval_env_spec: EnvSpec | None = None,
    algorithm_name: str | None = None,
    author: str = "offrl",
    description: str | None = None,
    ref_scores: tuple[float, float] | None = None,
    extra_metadata: dict[str, str | int | float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write episodes as a Minari (hdf5) dataset, atomically; returns the dataset folder.

    The dataset is built in `<cache root>/.staging-<uuid>` (hidden from minari's listing, on the
    same filesystem) and renamed into place only once complete, so a failure leaves nothing
    behind; what a killed writer leaves is removed by the next write. `env` gives the spaces
    and the collection spec; `eval_env_spec` defaults to it.
    `extra_metadata` adds flat keys (such as CHECKSUM_KEY). Refuses an existing id unless
    `overwrite`.
    """
    target = check_writable(dataset_id, overwrite)
    env_spec = env.spec
    root = minari_root()
    remove_abandoned_staging(root)
    check_space(dataset_id, episode_buffers, root)
    metadata: dict = {
        "dataset_id": dataset_id,
        "minari_version": minari.__version__,
        "author": {author},
    }
    if algorithm_name is not None:
        metadata["algorithm_name"] = algorithm_name
    if description is not None:
        metadata["description"] = description
    if (eval_env_spec or env_spec) is not None:
        metadata["eval_env_spec"] = (eval_env_spec or env_spec).to_json()
    if ref_scores is not None:
        metadata["ref_min_score"], metadata["ref_max_score"] = map(float, ref_scores)
    metadata |= extra_metadata or {}
    with staging_folder(root) as staging:
        staging.mkdir()
        storage = MinariStorage.new(
            staging / "data",
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_spec=env_spec,
        )
        storage.update_metadata(metadata)
        steps = _write_episodes(staging / "data" / MINARI_HDF5_FILE, episode_buffers)
        storage.update_metadata(
            {
                "total_steps": steps,
                "total_episodes": len(episode_buffers),
                "dataset_size": storage.get_size(),
            }
        )
        namespace = dataset_id.rpartition("/")[0]
        if namespace and namespace not in list_local_namespaces():
            # minari's own writer registers namespaces the same way; a concurrent writer may win.
            with contextlib.suppress(ValueError):
                create_namespace(namespace)
        _move_into_place(staging, target, dataset_id, overwrite)
    return target


def _write_episodes(path: Path, episodes: Sequence[EpisodeBuffer]) -> int:
    """What `MinariStorage.update_episodes` writes for HDF5 (a group `episode_<id>` with attributes
    id, seed and total_steps and a dataset per field; Dict fields become subgroups), through h5py's
    low-level API: the high-level one spent milliseconds per episode, which dominated datasets of
    ~45k short episodes. Returns the number of steps written."""
    steps = 0
    with h5py.File(path, "a", track_order=True) as file:
        order = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        order.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
        for episode_id, episode in enumerate(episodes):
            group = h5py.h5g.create(file.id, f"episode_{episode_id}".encode(), gcpl=order)
            length = len(episode.rewards)
            attributes = {"id": episode_id, "seed": episode.seed, "total_steps": length}
            for name, value in attributes.items():
                if value is not None:
                    _write_scalar_attribute(group, name, value)
            fields = {
                "observations": episode.observations,
                "actions": episode.actions,
                "rewards": episode.rewards,
                "terminations": episode.terminations,
                "truncations": episode.truncations,
                "infos": episode.infos,
            }
            _write_fields(group, fields, order)
            steps += length
    return steps


def read_episode_buffers(dataset_id: str) -> list[EpisodeBuffer]:
    """The episodes of a cached dataset with flat observations, exactly as `_write_episodes`
    wrote them (arrays, dtypes and reset seeds), ready to be written again."""
    path = minari_dataset_path(dataset_id) / "data" / "main_data.hdf5"
    fields = ("observations", "actions", "rewards", "terminations", "truncations")
    with h5py.File(path, "r") as file:
        episodes = []
        for episode_id in range(len(file)):
            group = file[f"episode_{episode_id}"]
            seed = group.attrs.get("seed")
            arrays = {name: group[name][()] for name in fields}
            episodes.append(EpisodeBuffer(seed=None if seed is None else int(seed), **arrays))
    return episodes


def _write_fields(group: h5py.h5g.GroupID, fields: dict, order: h5py.h5p.PropGCID) -> None:
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, dict):
            _write_fields(h5py.h5g.create(group, name.encode(), gcpl=order), value, order)
            continue
        array = np.ascontiguousarray(value)
        dataset = h5py.h5d.create(
            group,
            name.encode(),
            h5py.h5t.py_create(array.dtype, logical=True),
            h5py.h5s.create_simple(array.shape),
        )
        dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, array)


def _write_scalar_attribute(group: h5py.h5g.GroupID, name: str, value: int) -> None:
    array = np.asarray(value, dtype=np.int64)
    attribute = h5py.h5a.create(
        group, name.encode(), h5py.h5t.py_create(array.dtype), h5py.h5s.create(h5py.h5s.SCALAR)
    )
    attribute.write(array)


def _fingerprint(path: Path) -> list[list]:
    """Name, size and modification time of every file under `data/`: changes when they do."""
    files = sorted(p for p in (path / "data").rglob("*") if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def record_check(dataset_id: str, expected: str, ok: bool) -> None:
    """Remember a checksum verification, so `offrl data list` can show it without re-reading."""
    path = minari_dataset_path(dataset_id)
    stamp = {"expected": expected, "ok": ok, "files": _fingerprint(path)}
    tmp = path / f"{_CHECK_STAMP}.{uuid.uuid4().hex}.tmp"
    with contextlib.suppress(OSError):  # a read-only cache just keeps showing "unchecked"
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, path / _CHECK_STAMP)
    tmp.unlink(missing_ok=True)


def check_status(info: MinariInfo) -> str:
    """'ok' / 'mismatch' from the last verification of unchanged files, 'unchecked' if there is
    none (or the files changed since), 'none' when no checksum was recorded at writing."""
    expected = info.metadata.get(CHECKSUM_KEY)
    if expected is None:
        return "none"
    try:
        stamp = json.loads((info.path / _CHECK_STAMP).read_text())
    except (OSError, ValueError):
        return "unchecked"
    if stamp.get("expected") != expected or stamp.get("files") != _fingerprint(info.path):
        return "unchecked"
    return "ok" if stamp.get("ok") else "mismatch"
