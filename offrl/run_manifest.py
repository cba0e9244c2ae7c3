"""A run folder's run.json: what was trained, on which data, under which protocol, as a typed
record with one writer (`write_run_manifest`, by `fit`) and one reader (`read_run_manifest`).

The record ties the folder's checkpoints to their config: `fit` resumes a folder only when the
stored record agrees with the new one (`differing_fields`), the store builds its records from
it, and `offrl eval` rebuilds the agent and the normaliser from it.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from offrl.agent import DatasetSpec
from offrl.json_records import UNRECORDED, Unrecorded
from offrl.run_files import read_run_json, write_run_json

# A run folder from before behaviour versions were recorded was trained by version 1.
UNVERSIONED_BEHAVIOR = 1
# The fields a resumed run must share with the stored one (more steps may be asked for).
RESUME_FIELDS = ("agent", "task", "config", "seeds", "eval_every", "eval_episodes", "checksum")


@dataclasses.dataclass(frozen=True)
class Normalization:
    """The observation normaliser fitted on the dataset: (s - mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class RunManifest:
    agent: str
    behavior_version: int | Unrecorded
    task: str | None
    config: dict[str, Any]
    """The agent's Config as JSON (`offrl.agent.config_from_dict` rebuilds it)."""
    seeds: tuple[int, ...]
    eval_every: int
    eval_episodes: int
    steps: int
    checksum: str
    """sha256 of the dataset's transitions."""
    dataset_size: int
    spec: DatasetSpec
    normalizer: Normalization
    offrl_version: str
    git_commit: str | None

    @property
    def version(self) -> int:
        """The behaviour version of the agent that trained the run."""
        stored = self.behavior_version
        return UNVERSIONED_BEHAVIOR if stored is UNRECORDED else int(stored)


def git_commit() -> str | None:
    """The commit of the offrl checkout running, None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def differing_fields(stored: RunManifest, new: RunManifest) -> list[str]:
    """The RESUME_FIELDS in which two runs differ, in that order."""
    return [name for name in RESUME_FIELDS if getattr(stored, name) != getattr(new, name)]


def write_run_manifest(run_dir: Path, manifest: RunManifest) -> None:
    write_run_json(run_dir, manifest)


def read_run_manifest(run_dir: Path) -> RunManifest | None:
    """The run folder's record, None when it has no run.json; a damaged or foreign one is a
    RunFolderError naming the file and the field."""
    return read_run_json(run_dir, RunManifest, "a run record", "train into a new --out")
