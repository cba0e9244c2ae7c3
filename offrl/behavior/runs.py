"""The SAC run folders `offrl behavior ship` reads: run.json, the evaluated snapshots, the command
that reproduces a run, and replay re-runs checked to be the same training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offrl.behavior import sac
from offrl.behavior.manifest import env_short_name, sha256_file
from offrl.behavior.online import OnlineProtocol
from offrl.behavior.run_record import BehaviorRun, read_behavior_run
from offrl.errors import ConfigError
from offrl.run_files import read_records

SCHEDULE_FIELDS = ("steps", "eval_every", "checkpoint_every")
"""Protocol fields that only say how long and how often to save: SAC trains the same without
them (the snapshots of runs differing only in these are byte-identical at shared steps)."""


@dataclass(frozen=True)
class Sources:
    """The snapshots a ship chooses from."""

    run_dir: Path
    run: BehaviorRun
    recorded: dict[int, float]
    """The run's own evaluated snapshots: training-time return by step."""
    snapshot_runs: dict[int, Path]
    """Every usable snapshot step (the replay re-run's too) -> the run folder holding it."""
    replay_run: Path | None


def snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / "snapshots" / f"step_{step:08d}.msgpack"


def recorded_returns(run_dir: Path) -> dict[int, float]:
    """Training-time evaluation (10 episodes) of every snapshot that has one, by step."""
    records = {int(r["step"]): float(r["eval_return"]) for r in read_records(run_dir)}
    return {s: r for s, r in sorted(records.items()) if snapshot_path(run_dir, s).is_file()}


def read_run(run_dir: Path, env_id: str | None) -> BehaviorRun:
    """run.json of a behaviour run, checked against the env the caller names."""
    run = read_behavior_run(run_dir)
    if run is None:
        raise ConfigError(
            f"{run_dir} is not a behaviour run folder (no run.json of kind 'behavior'); pass "
            "the --out folder of `offrl behavior train`."
        )
    if env_id is not None and env_id != run.env:
        raise ConfigError(f"{run_dir} trained {run.env}, not {env_id}; pass --env {run.env}")
    return run


def train_command(run: BehaviorRun, suffix: str = "") -> str:
    """The `offrl behavior train` command that reproduces a run (non-default settings only),
    writing to runs/behavior/<env><suffix>."""
    parts = ["offrl behavior train", f"--env {run.env}"]
    parts.append(f"--out runs/behavior/{env_short_name(run.env)}{suffix}")
    if run.seed:
        parts.append(f"--seed {run.seed}")
    defaults = dataclasses.asdict(sac.Config()) | dataclasses.asdict(OnlineProtocol())
    defaults["hidden_dims"] = list(sac.Config().hidden_dims)
    for name, value in (run.config | run.protocol).items():
        if defaults.get(name) != value:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"--{name.replace('_', '-')} {shown}")
    return " ".join(parts)


def training_settings(run: BehaviorRun) -> dict[str, Any]:
    """What decides a run's training trajectory, flat: seed, SAC config, the rest of the
    protocol."""
    settings: dict[str, Any] = {"seed": run.seed}
    settings |= {f"config.{name}": value for name, value in run.config.items()}
    for name, value in run.protocol.items():
        if name not in SCHEDULE_FIELDS:
            settings[f"protocol.{name}"] = value
    return settings


def replay_run_snapshots(run_dir: Path, run: BehaviorRun, replay_dir: Path) -> dict[int, float]:
    """The evaluated snapshots of `replay_dir`, a re-run of the start of `run_dir` that saved
    more often, by step. Refused unless it is the same training: the same env and settings, and
    byte-identical snapshots at every step both runs saved."""
    ours, theirs = training_settings(run), training_settings(read_run(replay_dir, run.env))
    differing = [name for name in sorted(ours | theirs) if ours.get(name) != theirs.get(name)]
    if differing:
        raise ConfigError(
            f"{replay_dir} did not train like {run_dir} (differs in {', '.join(differing)}); "
            f"re-run the start of {run_dir} with its settings ({train_command(run)}) into "
            "another --out, with fewer --steps and a smaller --eval-every."
        )
    replay_steps, run_steps = recorded_returns(replay_dir), recorded_returns(run_dir)
    shared = sorted(set(replay_steps) & set(run_steps))
    if not shared:
        raise ConfigError(
            f"{replay_dir} and {run_dir} saved no snapshot at the same step, so they cannot be "
            f"checked to be the same training; let {replay_dir} reach step {min(run_steps)}."
        )
    for step in shared:
        if sha256_file(snapshot_path(replay_dir, step)) != sha256_file(
            snapshot_path(run_dir, step)
        ):
            raise ConfigError(
                f"The step-{step} snapshots of {replay_dir} and {run_dir} differ: not the same "
                "training. XLA's float results depend on the machine, the library versions and "
                "the number of threads, so re-run it the way the run trained (same machine, "
                "XLA_FLAGS and CPU pinning), uninterrupted."
            )
    return replay_steps


def snapshot_sources(run_dir: Path, run: BehaviorRun, replay_run: Path | None) -> Sources:
    """The run's evaluated snapshots (at least two), and those of its replay re-run if any."""
    recorded = recorded_returns(run_dir)
    if len(recorded) < 2:
        raise ConfigError(
            f"{run_dir} has {len(recorded)} evaluated snapshot(s); ship needs a run with at "
            "least two (train longer)."
        )
    snapshot_runs = dict.fromkeys(recorded, run_dir)
    if replay_run is not None:
        replay_steps = replay_run_snapshots(run_dir, run, replay_run)
        snapshot_runs = dict.fromkeys(replay_steps, replay_run) | snapshot_runs
    return Sources(run_dir, run, recorded, snapshot_runs, replay_run)
