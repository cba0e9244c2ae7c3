"""A SAC behaviour run folder's run.json as a typed record, with one writer (`write_behavior_run`,
by `offrl behavior train`) and one reader (`read_behavior_run`, by ship and plot).

The JSON keys are the record's field names, sorted; `config` and `protocol` keep the SAC config
and the online protocol as the run recorded them (the shipped policies' manifest copies them as
they are, and a run of an older offrl still reads).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from offrl.agent import DatasetSpec
from offrl.run_files import read_run_json, write_run_json


@dataclasses.dataclass(frozen=True, kw_only=True)
class BehaviorRun:
    """What a SAC behaviour run trained: the env, the seed and every setting."""

    kind: Literal["behavior"] = "behavior"  # tells it from an offline run's run.json
    env: str  # the gymnasium env id
    seed: int
    config: dict[str, Any]
    """The SAC config's fields (`hidden_dims` a list)."""
    protocol: dict[str, Any]
    """The online protocol's fields (offrl.behavior.online.OnlineProtocol)."""
    spec: DatasetSpec


def write_behavior_run(run_dir: Path, run: BehaviorRun) -> None:
    write_run_json(run_dir, run)


def read_behavior_run(run_dir: Path) -> BehaviorRun | None:
    """The run folder's record, None when it has no run.json; a damaged one, or one that is not a
    behaviour run's, is a RunFolderError naming the file (and the field)."""
    remedy = "pass the --out folder of `offrl behavior train`, or train into a new --out"
    return read_run_json(run_dir, BehaviorRun, "a behaviour run's run.json", remedy)
