"""Optional loggers of a run's scalars, one stream per seed: TensorBoard (`pip install
'offrl[tensorboard]'`, event files in OUT/tensorboard/seed<N>) and Weights & Biases (`pip install
'offrl[wandb]'`, one W&B run per seed, grouped). docs/logging.md shows both.

Both get the same scalars at the step they belong to: `train/<metric>` (each metric's mean over
the `log_every` updates before the step) and, at every evaluation, `eval/return`,
`eval/return_std`, `eval/normalized_score` (when the task has reference scores) and
`perf/updates_per_s`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from offrl.errors import ConfigError
from offrl.run_manifest import RunManifest


class SeedStream(Protocol):
    """One seed's scalars in one logger."""

    def log(self, scalars: Mapping[str, float], step: int) -> None: ...

    def close(self, failed: bool) -> None: ...


@dataclasses.dataclass(frozen=True)
class WandbOptions:
    """Where `offrl train --wandb PROJECT` logs."""

    project: str
    entity: str | None = None
    """W&B entity (user or team); None: the logged-in user's default."""
    group: str | None = None
    """Group of the seeds' runs; None: '<agent>-<task>'."""
    mode: str | None = None
    """'online' or 'offline' (kept under OUT/wandb, `wandb sync` uploads it later); None:
    $WANDB_MODE, else online."""


WANDB_MODES = ("online", "offline")


def train_scalars(losses: Mapping[str, float]) -> dict[str, float]:
    return {f"train/{name}": value for name, value in losses.items()}


def evaluation_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The scalars of one seed's evaluation record (`offrl.train` writes them)."""
    scalars = {"perf/updates_per_s": record["updates_per_s"]}
    for name in ("return", "return_std", "normalized_score"):
        if record.get(name) is not None:
            scalars[f"eval/{name}"] = record[name]
    return scalars


def tensorboard_writer_type(run_dir: Path | None) -> type:
    """tensorboardX's SummaryWriter, checked before the run folder is touched."""
    if run_dir is None:
        raise ConfigError("--tensorboard needs --out: the event files go into the run folder")
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ConfigError(
            "--tensorboard needs tensorboardX: pip install 'offrl[tensorboard]'"
        ) from err
    return SummaryWriter


def wandb_module(options: WandbOptions) -> ModuleType:
    """The wandb package, checked with the options before the run folder is touched."""
    if options.mode is not None and options.mode not in WANDB_MODES:
        raise ConfigError(f"--wandb-mode must be one of {WANDB_MODES}, got {options.mode!r}")
    if not options.project:
        raise ConfigError("--wandb needs a project name")
    try:
        import wandb
    except ImportError as err:
        raise ConfigError("--wandb needs wandb: pip install 'offrl[wandb]'") from err
    return wandb


class TensorBoardStream:
    def __init__(self, writer: Any):
        self.writer = writer

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def close(self, failed: bool) -> None:
        self.writer.close()


class WandbStream:
    def __init__(self, run: Any):
        self.run = run

    def log(self, scalars: Mapping[str, float], step: int) -> None:
        self.run.log(dict(scalars), step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def tensorboard_streams(writer_type: type, run_dir: Path, seeds: Sequence[int]) -> list:
    """A writer per seed in OUT/tensorboard/seed<N>: TensorBoard shows the seeds as runs."""
    folder = run_dir / "tensorboard"
    return [TensorBoardStream(writer_type(str(folder / f"seed{seed}"))) for seed in seeds]


def wandb_streams(
    wandb: ModuleType,
    options: WandbOptions,
    name: str,
    config: Mapping[str, Any],
    seeds: Sequence[int],
    run_dir: Path | None,
) -> list:
    """A W&B run per seed (as CORL logs), grouped, with `config` and its seed; its files go
    under OUT/wandb (wandb's own default place without a run folder)."""
    streams: list = []
    try:
        for seed in seeds:
            run = wandb.init(
                project=options.project,
                entity=options.entity,
                group=options.group or name,
                name=f"{name}-seed{seed}",
                config={**config, "seed": seed},
                dir=None if run_dir is None else str(run_dir),
                mode=options.mode,
                reinit="create_new",
                # The progress bar redraws its line many times: no copy of it in each seed's run.
                settings=wandb.Settings(console="off"),
            )
            streams.append(WandbStream(run))
    except wandb.errors.Error as err:
        for stream in streams:
            stream.close(failed=True)
        raise ConfigError(
            f"W&B could not start a run ({err}): log in with `wandb login`, or log offline with "
            "--wandb-mode offline and upload later with `wandb sync`"
        ) from None
    return streams


@dataclasses.dataclass
class RunLoggers:
    """Every chosen logger's streams, each a list in seed order."""

    loggers: list[list[SeedStream]]

    def log(self, per_seed: Sequence[Mapping[str, float]], step: int) -> None:
        for streams in self.loggers:
            for stream, scalars in zip(streams, per_seed, strict=True):
                stream.log(scalars, step)

    def close(self, failed: bool) -> None:
        for streams in self.loggers:
            for stream in streams:
                stream.close(failed)


def open_run_loggers(
    held: contextlib.ExitStack,
    writer_type: type | None,
    wandb_package: ModuleType | None,
    wandb: WandbOptions | None,
    manifest: RunManifest,
    log_every: int,
    run_dir: Path | None,
) -> RunLoggers:
    """The chosen loggers' streams for every seed, closed when `held` is (W&B runs marked failed
    when an error closes it), those opened before a logger fails to open included."""
    loggers = RunLoggers([])
    held.push(lambda error_type, *_: loggers.close(failed=error_type is not None))
    seeds = list(manifest.seeds)
    if writer_type is not None:
        loggers.loggers.append(tensorboard_streams(writer_type, run_dir, seeds))
    if wandb_package is not None:
        name = f"{manifest.agent}-{manifest.task or 'data'}"
        config = logged_config(manifest, log_every, run_dir)
        loggers.loggers.append(wandb_streams(wandb_package, wandb, name, config, seeds, run_dir))
    return loggers


def logged_config(manifest: RunManifest, log_every: int, run_dir: Path | None) -> dict:
    """What a W&B run shows as its config: the hyper-parameters at the top level (as CORL logs
    them, so runs filter by them), then the protocol and the data."""
    return {
        **manifest.config,
        "agent": manifest.agent,
        "behavior_version": manifest.version,
        "task": manifest.task,
        "steps": manifest.steps,
        "eval_every": manifest.eval_every,
        "eval_episodes": manifest.eval_episodes,
        "log_every": log_every,
        "seeds": list(manifest.seeds),
        "dataset_checksum": manifest.checksum,
        "dataset_size": manifest.dataset_size,
        "run_dir": None if run_dir is None else str(run_dir),
        "offrl_version": manifest.offrl_version,
        "git_commit": manifest.git_commit,
    }
