"""Orbax checkpoints of the training carry: atomic (written aside, then renamed), verified.

Every checkpoint gets a manifest of its files' sha256 when it is written
(`<step>/offrl-sha256.json`); reading one checks it first, so a truncated, deleted or flipped file
is named as damage instead of surfacing as a TensorStore traceback or a silently wrong policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from offrl.errors import OffrlError
from offrl.run_files import atomic_write_text

# Orbax logs every save at INFO through absl; the progress bar is the user's view of a run.
logging.getLogger("absl").setLevel(logging.WARNING)

CHECKSUMS = "offrl-sha256.json"
DAMAGED = "checkpoints-damaged"


class CheckpointDamaged(OffrlError):
    """A checkpoint whose files differ from the checksums written with it, or that fails to load."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` but its checksum manifest, by relative path."""
    return {
        str(path.relative_to(folder)): _sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != CHECKSUMS
    }


def saved_steps(run_dir: Path) -> list[int]:
    """Steps of the finalised checkpoints in a run folder, read from the folder names alone."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


class ClosedLoopCallbacksDropped:
    """When a save fails, TensorStore's writes still in flight call back into the event loop
    orbax is closing, and each raises "Event loop is closed" as an unraisable error: dozens of
    tracebacks around the one message that matters. Drops those, and only those; every other
    unraisable error goes on to the hook that was in place (Python's, or a host's: pytest's)."""

    def __init__(self, previous: Callable[[Any], object]):
        self.previous = previous

    def __call__(self, unraisable: Any) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            self.previous(unraisable)


class FailedWriteEchoes(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" (or "_GatheringFuture ...", for the
    `asyncio.gather` of orbax's writes) for an orbax write, logged whenever the task or future is
    collected, maybe long after `save` raised its failure; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).partition("\n")[0].endswith(" exception was never retrieved"):
            return True
        trace = record.exc_info[2] if record.exc_info else None
        return not any("orbax" in frame.filename for frame in traceback.extract_tb(trace))


def hide_failed_write_echoes() -> None:
    """After a failed save: asyncio's reports of its orbax write tasks are left out, once."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, FailedWriteEchoes) for f in asyncio_log.filters):
        asyncio_log.addFilter(FailedWriteEchoes())


def remove_partial_saves(folder: Path, step: int, attempts: int = 50) -> None:
    """Remove orbax's temporary folders of `step`; again while a writer thread that outlived
    the failed save still creates files in them (seen on a loaded 2-core machine)."""
    for _ in range(attempts):
        partial = list(folder.glob(f"{step}.orbax-checkpoint-tmp*"))
        if not partial:
            return
        for path in partial:
            shutil.rmtree(path, ignore_errors=True)
        time.sleep(0.1)


class Checkpointer:
    """Keeps the last `keep` checkpoints of a run under `<run_dir>/checkpoints/<step>`."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self._run_dir = Path(run_dir).absolute()
        self._manager = ocp.CheckpointManager(self._run_dir / "checkpoints", options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def step_dir(self, step: int) -> Path:
        return self._run_dir / "checkpoints" / str(step)

    def save(self, step: int, carry: Any, meta: dict) -> None:
        """Blocks until the checkpoint and its checksums are on disk: a crash after it loses
        nothing, and a crash between the two leaves a checkpoint that is merely unverified.

        A failed save (a full disk) leaves nothing of itself behind: orbax's temporary folder
        is removed and the error re-raised, without orbax's own log lines from its threads.
        """
        args = ocp.args.Composite(state=ocp.args.StandardSave(carry), meta=ocp.args.JsonSave(meta))
        absl = logging.getLogger("absl")
        level = absl.level
        absl.setLevel(logging.CRITICAL)  # the error is raised here; its echoes would be noise
        if not isinstance(sys.unraisablehook, ClosedLoopCallbacksDropped):
            sys.unraisablehook = ClosedLoopCallbacksDropped(sys.unraisablehook)
        try:
            self._manager.save(step, args=args, force=True)
            self._manager.wait_until_finished()
            folder = self.step_dir(step)
            atomic_write_text(folder / CHECKSUMS, json.dumps(file_digests(folder), indent=1))
        except BaseException:
            hide_failed_write_echoes()
            with contextlib.suppress(Exception):
                self._manager.wait_until_finished()
            remove_partial_saves(self.step_dir(step).parent, step)
            raise
        finally:
            absl.setLevel(level)

    def damage(self, step: int) -> str | None:
        """Why the checkpoint at `step` is not intact, or None when its files match their
        checksums (or it has none: written by an offrl from before checksums, or cut off just
        before they were written; `restore` then still fails loudly on an unreadable file)."""
        folder = self.step_dir(step)
        manifest = folder / CHECKSUMS
        if not manifest.exists():
            return None
        try:
            expected = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as err:
            return f"its checksum file {CHECKSUMS} is unreadable ({err})"
        found = file_digests(folder)
        missing = sorted(set(expected) - set(found))
        if missing:
            return f"{len(missing)} file(s) are missing, e.g. {missing[0]}"
        changed = sorted(name for name, digest in expected.items() if found[name] != digest)
        if changed:
            return f"{len(changed)} file(s) differ from their checksums, e.g. {changed[0]}"
        return None

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore the verified checkpoint at `step` into the structure (and static fields) of
        `like`; a damaged one raises CheckpointDamaged."""
        why = self.damage(step)
        if why is not None:
            raise CheckpointDamaged(f"checkpoint {self.step_dir(step)} is damaged: {why}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        )
        try:
            restored = self._manager.restore(step, args=args)
        except Exception as err:  # orbax and TensorStore raise many types for unreadable files
            raise CheckpointDamaged(
                f"checkpoint {self.step_dir(step)} is damaged: it does not load "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]})"
            ) from err
        return restored.state, restored.meta

    def restore_latest_intact(
        self, like: Any, warn: Callable[[str], None]
    ) -> tuple[int, Any, dict] | None:
        """The newest checkpoint that verifies and loads, as (step, carry, meta); None if none.

        Each damaged newer one is moved to `<run_dir>/checkpoints-damaged/` (kept, not deleted,
        and out of the way of the checkpoints the resumed run writes again), with a warning.
        """
        for step in reversed(self.all_steps()):
            try:
                carry, meta = self.restore(step, like)
            except CheckpointDamaged as err:
                aside = self._run_dir / DAMAGED / str(step)
                aside.parent.mkdir(exist_ok=True)
                shutil.rmtree(aside, ignore_errors=True)
                self.step_dir(step).rename(aside)
                self._manager.reload()
                warn(f"{err}; moved it to {aside} and fell back to the checkpoint before it")
                continue
            return step, carry, meta
        return None

    def close(self) -> None:
        self._manager.close()
