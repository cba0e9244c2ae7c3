"""Orbax checkpoints of the training carry: atomic (written aside, then renamed), resumable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

# Orbax logs every save at INFO through absl; the progress bar is the user's view of a run.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpointer:
    """Keeps the last `keep` checkpoints of a run under `<run_dir>/checkpoints/<step>`."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=False, cleanup_tmp_directories=True
        )
        self._manager = ocp.CheckpointManager(
            Path(run_dir).absolute() / "checkpoints", options=options
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, carry: Any, meta: dict) -> None:
        """Blocks until the checkpoint is complete on disk, so a crash after it loses nothing."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(carry), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore the carry saved at `step` into the structure (and static fields) of `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        )
        restored = self._manager.restore(step, args=args)
        return restored.state, restored.meta

    def close(self) -> None:
        self._manager.close()
