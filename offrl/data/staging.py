"""Dataset writes that leave nothing half-done: a staging folder per writer, held by it, cleaned
up after writers killed mid-write, and a free-space check before the first byte.

A dataset is built in `<cache root>/.staging-<uuid>` (hidden from minari's listing, on the same
filesystem) and renamed into place once complete; an overwritten dataset waits in
`<staging>-replaced` until the new one is in place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.errors import DiskFull

STAGING = ".staging-"  # a dataset being written: `<cache root>/.staging-<uuid>`
REPLACED = "-replaced"  # the dataset an overwrite swapped out, until the new one is in place


@contextlib.contextmanager
def staging_folder(root: Path) -> Iterator[Path]:
    """A fresh `<root>/.staging-<uuid>` path, marked as in use by an flock on the `.lock` file
    beside it for as long as the writer lives; the folder and the lock file go on exit."""
    name = f"{STAGING}{uuid.uuid4().hex}"
    lock = root / f"{name}.lock"
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield root / name
        finally:
            shutil.rmtree(root / name, ignore_errors=True)
            lock.unlink(missing_ok=True)  # before the flock goes: no cleaner sees it free
    finally:
        os.close(fd)


def _writer_alive(lock: Path) -> bool:
    """Whether a staging folder's writer still holds its lock (no lock file: it is gone)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_abandoned_staging(root: Path) -> list[Path]:
    """Remove the `.staging-*` folders under the cache `root` of writers that are gone (killed
    mid-write), and put back a dataset that was swapped out for an overwrite and never replaced.
    Returns what it removed."""
    removed = []
    for path in sorted(root.glob(f"{STAGING}*")):
        if path.suffix == ".lock" or not path.is_dir():
            continue
        base = path.name.removesuffix(REPLACED)
        lock = root / f"{base}.lock"
        if _writer_alive(lock):
            continue
        if path.name.endswith(REPLACED):
            with contextlib.suppress(OSError, ValueError, KeyError):
                dataset_id = json.loads((path / "data" / "metadata.json").read_text())["dataset_id"]
                target = root / dataset_id
                if not target.exists():  # killed between the two renames: the id is empty
                    os.replace(path, target)
                    continue
        shutil.rmtree(path, ignore_errors=True)
        lock.unlink(missing_ok=True)
        removed.append(path)
    return removed


# HDF5's own bytes per episode (a group, its attributes, a header per field, infos): measured
# 2.5-2.7 KiB on hopper and PointMaze datasets; 4 KiB keeps the estimate above the real size.
EPISODE_OVERHEAD = 4096


def _nbytes(tree) -> int:
    if isinstance(tree, dict):
        return sum(_nbytes(value) for value in tree.values())
    return int(np.asarray(tree).nbytes) if tree is not None else 0


def check_space(dataset_id: str, episodes: Sequence[EpisodeBuffer], root: Path) -> None:
    """Refuse a write the disk cannot hold, before it starts: h5py answers a full disk with a
    cascade of errors from its destructors and, at worst, a crash."""
    needed = sum(
        _nbytes(e.observations) + _nbytes(e.actions) + _nbytes(e.rewards) + EPISODE_OVERHEAD
        for e in episodes
    )
    needed += 2 * sum(len(e.rewards) for e in episodes)  # terminations and truncations, 1 byte
    free = shutil.disk_usage(root).free
    if needed * 1.05 > free:
        raise DiskFull(
            f"writing {dataset_id} needs about {needed / 2**20:,.1f} MiB, but the disk holding "
            f"{root} has {free / 2**20:,.1f} MiB free: free some space, or point "
            "MINARI_DATASETS_PATH at a larger disk, and run the command again."
        )
