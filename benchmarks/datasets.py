"""The datasets a bench profile trains on: made where missing, checked, and their checksums."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from tqdm.auto import tqdm

from benchmarks.configs import Profile
from offrl.data import generate, minari_io
from offrl.data.registry import known_task_names, load_task, resolve_task
from offrl.errors import ConfigError, DatasetError
from offrl.progress import progress_shown


def remake_reason(task: str) -> str | None:
    """Why the generated dataset on disk for `task` must be made again before a bench trains on
    it: made from other policies than the shipped ones or by an older rollout, or to another
    recipe than the standard one (a `--steps` preview, another seed); None when it is the
    standard dataset."""
    if generate.is_stale(task):
        return "was made from other policies than the shipped ones, or by an older offrl"
    preview = generate.nonstandard(task)
    return None if preview is None else f"holds {preview}"


def ensure_datasets(tasks: Sequence[str]) -> dict[str, str]:
    """Make every missing generated dataset now, and again any that `remake_reason` names: a
    bench trains only on the standard datasets (env workers on every core, at most two: the
    bytes do not depend on it); other missing data is an error naming it. Returns each task's
    dataset checksum."""
    local = set(minari_io.local_dataset_ids())
    checksums = {}
    for task in tasks:
        resolve_task(task)
        generated = task.startswith("offrl/")
        reason = remake_reason(task) if generated and task in local else None
        if generated and (reason or task not in local):
            if reason:
                print(f"{task} {reason}: making the standard dataset")
            recipe = generate.find_recipe(task)
            with tqdm(total=recipe.transitions, desc=f"make {task}", unit="tr") as bar:
                made = generate.make_dataset(
                    task,
                    overwrite=reason is not None,
                    advance=bar.update,
                    workers=min(2, os.cpu_count() or 1),
                )
            checksums[task] = made.checksum
        else:
            checksums[task] = load_task(task).checksum
    return checksums


def task_checksums(profile: Profile) -> dict[str, str]:
    """The profile's tasks, each with its dataset's checksum, generated data made first where
    needed (see ensure_datasets); `tasks=None`: every known task whose data is on disk."""
    if profile.tasks is not None:
        return ensure_datasets(profile.tasks)
    local = set(minari_io.local_dataset_ids())
    names = known_task_names()
    checksums = ensure_datasets([n for n in names if n.startswith("offrl/") and n in local])
    for name in names:
        if not name.startswith("offrl/"):
            with contextlib.suppress(DatasetError, ConfigError):
                checksums[name] = load_task(name).checksum
    return checksums


def checksums_on_disk(profile: Profile) -> dict[str, str | None]:
    """The profile's tasks, each with its dataset's checksum, or None where the bench would make
    the dataset first (missing, or not the standard one); nothing is made. `tasks=None`: every
    known task whose data is on disk."""
    local = set(minari_io.local_dataset_ids())
    everything = profile.tasks is None
    tasks = known_task_names() if everything else profile.tasks
    checksums: dict[str, str | None] = {}
    for task in tasks:
        resolve_task(task)
        generated = task.startswith("offrl/")
        if generated and (task not in local or remake_reason(task)):
            if not everything:
                checksums[task] = None
            continue
        try:
            with progress_shown(False):
                checksums[task] = load_task(task).checksum
        except (DatasetError, ConfigError):
            if not everything:
                checksums[task] = None
    return checksums
