"""Writing Minari datasets into the local cache, atomically: staged beside the cache, renamed into
place once complete (see offrl.data.staging)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer
from minari.dataset.minari_storage import MinariStorage
from minari.namespace import create_namespace, list_local_namespaces

from offrl.data.minari_cache import MINARI_HDF5_FILE, minari_dataset_path, minari_root
from offrl.data.staging import (
    REPLACED,
    check_space,
    remove_abandoned_staging,
    staging_folder,
)
from offrl.errors import DatasetError


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
