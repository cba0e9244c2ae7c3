"""The run folder as training sees it: whether `--out` can hold a run, whether the run there can
be resumed, and each chunk's records and checkpoint written so that the folder always holds
exactly the run up to its newest checkpoint."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from offrl.checkpoint import Checkpointer, saved_steps
from offrl.errors import ConfigError, DiskFull
from offrl.locks import LOCK
from offrl.run_files import (
    LOSSES,
    RECORDS,
    append_records,
    cut_records,
    free_space,
    out_of_space,
    records_size,
)
from offrl.run_manifest import RunManifest, differing_fields, read_run_manifest


def save_chunk(
    run_dir: Path,
    checkpointer: Checkpointer,
    step: int,
    n: int,
    carry: Any,
    records: list,
    losses: list,
) -> None:
    """A chunk's loss and evaluation records, then its checkpoint. When any write fails for lack
    of space, the records are cut back, so the folder holds exactly the run up to the previous
    checkpoint."""
    sizes = {name: records_size(run_dir, name) for name in (LOSSES, RECORDS)}
    try:
        append_records(run_dir, losses, LOSSES)
        append_records(run_dir, records)
        checkpointer.save(step, carry, {"step": step})
    except Exception as error:
        for name, size in sizes.items():
            cut_records(run_dir, size, name)
        if not out_of_space(error):
            raise
        last = step - n
        kept = f"the last good checkpoint (step {last}) is kept" if last else "it had none yet"
        raise DiskFull(
            f"the disk holding {run_dir} is full ({free_space(run_dir)}): the records and "
            f"checkpoint of step {step} could not be written, and nothing of them was kept; "
            f"{kept}. Free some space and run the same command to resume."
        ) from None


def warn(message: str) -> None:
    tqdm.write(f"offrl: warning: {message}", file=sys.stderr)


def check_out_folder(run_dir: Path) -> None:
    """--out must be a folder this process can create or write in, checked before any work."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file; pass a folder (new or an earlier run's)")
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {run_dir} lies under {existing}, which is a file; pass a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--out {run_dir}: {existing} is not writable (permissions or a read-only disk); "
            "pass a folder you can write to"
        )


def describe_differences(stored: RunManifest, new: RunManifest) -> str:
    """Each differing setting with its stored and new value; config fields one by one."""
    parts = []
    for name in differing_fields(stored, new):
        if name == "config":
            old, now = stored.config, new.config
            keys = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
            parts += [f"config.{k} {old.get(k)!r} there, {now.get(k)!r} now" for k in keys]
        else:
            parts.append(f"{name} {getattr(stored, name)!r} there, {getattr(new, name)!r} now")
    return "; ".join(parts)


def check_resume(
    run_dir: Path, manifest: RunManifest, on_fresh_start: Callable[[str], None] = warn
) -> RunManifest | None:
    """The stored manifest, if `run_dir` holds a run to resume; None for a fresh start.

    A run with other settings is refused, unless it has no checkpoint yet: then it holds nothing
    to lose, and a corrected command starts the folder afresh (told to `on_fresh_start`).
    """
    check_out_folder(run_dir)
    stored = read_run_manifest(run_dir)
    if stored is None:
        if run_dir.exists() and any(p.name != LOCK for p in run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} exists and is not an offrl run folder (no run.json); "
                "pass an empty or new --out folder"
            )
        return None
    differences = differing_fields(stored, manifest)
    if (differences or stored.version != manifest.version) and not saved_steps(run_dir):
        on_fresh_start(
            f"{run_dir} held a run with other settings and no checkpoint yet: starting afresh"
        )
        return None
    if differences:
        raise ConfigError(
            f"{run_dir} holds a run with other settings: {describe_differences(stored, manifest)}"
            "; resume it with the same settings or pass a new --out"
        )
    if stored.version != manifest.version:
        raise ConfigError(
            f"{run_dir} holds a run trained by {stored.agent} behaviour version "
            f"{stored.version}; this offrl's {manifest.agent} is version {manifest.version} "
            "(its update changed since), so the run cannot be resumed: pass a new --out"
        )
    return stored
