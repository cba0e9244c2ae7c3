"""`offrl behavior ship`: pick an env's behaviour policies from a SAC run, measure them and write
them with the manifest entry and the learning curve.

`ship` reads a run folder written by `offrl behavior train` and keeps what D4RL kept (see
offrl.behavior.selection): an expert, a medium policy and the replay phases before it. Every
return in the manifest is measured over 100 episodes (offrl.behavior.measure); the files are
written as offrl.behavior.manifest describes them.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offrl.behavior.manifest import (
    EnvPolicies,
    Evaluation,
    ExpertPolicy,
    MediumPolicy,
    RandomPhase,
    ReplayPhase,
    Returns,
    SnapshotPhase,
    Training,
    env_short_name,
    policies_dir,
    read_policy_manifest,
    sha256_file,
    write_policy_manifest,
)
from offrl.behavior.measure import EVAL_EPISODES, EVAL_SEED, summary
from offrl.behavior.plot import plot_curve
from offrl.behavior.runs import Sources, read_run, snapshot_path, snapshot_sources, train_command
from offrl.behavior.selection import Choice, Phases, ShipOptions, choose
from offrl.envs.families import FAMILIES
from offrl.errors import ConfigError

EXPERT_MIN_RETURN = {
    name: family.expert_min_return
    for name, family in FAMILIES.items()
    if family.expert_min_return is not None
}
"""The bar a shipped expert must reach: mean return over 100 episodes."""


@dataclass(frozen=True)
class ShipResult:
    short: str
    entry: EnvPolicies
    folder: Path

    def report(self) -> str:
        """What was shipped, one line per policy."""
        entry = self.entry
        lines = [f"Shipped {entry.env_id} policies to {self.folder / self.short}:"]

        def line(
            name: str, returns: Returns | MediumPolicy | ExpertPolicy, step: int | None
        ) -> str:
            where = f"step {step:>8,}" if step is not None else " " * 13
            return (
                f"  {name:10} {where}  return {returns.return_mean:9.1f} ± "
                f"{returns.return_std:7.1f}"
            )

        lines.append(line("random", entry.random, None))
        lines.append(line("medium", entry.medium, entry.medium.step))
        lines.append(line("expert", entry.expert, entry.expert.step))
        if entry.expert.below_threshold:
            lines.append(
                f"  WARNING: the expert is below the {entry.expert_min_return:.0f} bar "
                "(shipped with --allow-below-threshold: for tests and development only)"
            )
        replay = ", ".join(f"{p.step or 'random'}:{p.steps}" for p in entry.replay)
        lines.append(f"  replay     {len(entry.replay)} phases (step:steps) {replay}")
        return "\n".join(lines)


def ship(
    run_dir: str | Path,
    env_id: str | None = None,
    out: str | Path | None = None,
    *,
    replay_run: str | Path | None = None,
    episodes: int = EVAL_EPISODES,
    replay_snapshots: int = 20,
    candidates: int = 5,
    allow_below_threshold: bool = False,
    progress: bool = True,
) -> ShipResult:
    """Pick, measure and write an env's expert, medium and replay policies from a SAC run.

    Every return is measured over `episodes` episodes (only `candidates` snapshots are measured
    while choosing). The expert must reach EXPERT_MIN_RETURN unless `allow_below_threshold`
    (tests and development only; the entry says so). The replay phases come from the run's
    snapshots and those of `replay_run` (a re-run of its start that saved more often, see
    offrl.behavior.runs.replay_run_snapshots), thinned to at most `replay_snapshots` snapshots.
    """
    if min(episodes, replay_snapshots, candidates) < 1:
        raise ConfigError("episodes, replay_snapshots and candidates must be >= 1")
    options = ShipOptions(episodes, replay_snapshots, candidates, allow_below_threshold, progress)
    run_dir, folder = Path(run_dir), Path(out) if out is not None else policies_dir()
    run = read_run(run_dir, env_id)
    bar_return = expert_bar(run.env, allow_below_threshold)
    sources = snapshot_sources(run_dir, run, None if replay_run is None else Path(replay_run))
    choice = choose(sources, bar_return, options)
    short = env_short_name(run.env)
    with staged_env_folder(folder, short) as staging:
        hashes = copy_policies(sources, policy_files(short, choice), staging)
        entry = shipped_entry(sources, choice, bar_return, options.episodes, hashes)
        plot_curve(run_dir, staging / "curve.png", entry)
    write_policy_manifest(read_policy_manifest(folder).with_env(short, entry), folder)
    return ShipResult(short, read_policy_manifest(folder).envs[short], folder)


def expert_bar(env_id: str, allow_below_threshold: bool) -> float | None:
    """The env's expert return bar; None (allowed only below the threshold) when it has none."""
    bar_return = EXPERT_MIN_RETURN.get(env_short_name(env_id))
    if bar_return is None and not allow_below_threshold:
        raise ConfigError(
            f"No expert return bar is set for {env_id} (known: {', '.join(EXPERT_MIN_RETURN)})."
        )
    return bar_return


def replay_files(short: str, phases: Phases) -> list[str | None]:
    """Each replay phase's file, numbered in training order; None for the uniform warm-up."""
    numbers = itertools.count()
    return [
        None if step is None else f"{short}/replay_{next(numbers):02d}.msgpack"
        for step, _ in phases
    ]


def policy_files(short: str, choice: Choice) -> dict[str, int]:
    """Each shipped file (relative to the policies folder) -> the snapshot step it holds."""
    files = {
        f"{short}/expert.msgpack": choice.expert_step,
        f"{short}/medium.msgpack": choice.medium_step,
    }
    for file, (step, _) in zip(replay_files(short, choice.phases), choice.phases, strict=True):
        if file is not None and step is not None:
            files[file] = step
    return files


@contextlib.contextmanager
def staged_env_folder(folder: Path, short: str) -> Iterator[Path]:
    """An empty folder to fill, swapped in for `folder / short` when the block succeeds; a failure
    before the swap leaves the shipped folder as it was."""
    staging = folder / f".staging-{short}-{uuid.uuid4().hex}"
    target, retired = folder / short, folder / f".retired-{short}-{uuid.uuid4().hex}"
    try:
        staging.mkdir(parents=True)
        yield staging
        if target.exists():
            target.replace(retired)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def copy_policies(sources: Sources, files: dict[str, int], staging: Path) -> dict[str, str]:
    """Copy each file's snapshot into the staged env folder; the copies' sha256 by file."""
    hashes = {}
    for relative, step in files.items():
        copy = staging / Path(relative).name
        shutil.copyfile(snapshot_path(sources.snapshot_runs[step], step), copy)
        hashes[relative] = sha256_file(copy)
    return hashes


def shipped_entry(
    sources: Sources,
    choice: Choice,
    bar_return: float | None,
    episodes: int,
    hashes: dict[str, str],
) -> EnvPolicies:
    """The manifest entry of the chosen policies, whose copies have these sha256 by file."""
    run, short = sources.run, env_short_name(sources.run.env)

    def shipped(file: str, step: int) -> dict[str, Any]:
        """The fields every shipped snapshot records."""
        return {"file": file, "step": step, "sha256": hashes[file]} | summary(choice.measured[step])

    replay: list[ReplayPhase] = [
        RandomPhase(steps=steps)
        if file is None or step is None
        else SnapshotPhase(**shipped(file, step), steps=steps)
        for file, (step, steps) in zip(
            replay_files(short, choice.phases), choice.phases, strict=True
        )
    ]
    return EnvPolicies(
        env_id=run.env,
        hidden_dims=tuple(run.config["hidden_dims"]),
        action_dim=run.spec.action_dim,
        max_action=run.spec.max_action,
        obs_dim=run.spec.obs_dim,
        expert_min_return=bar_return,
        evaluation=Evaluation(
            episodes=episodes,
            seed=EVAL_SEED,
            policy="deterministic tanh(mean); random = uniform actions",
        ),
        training=training_record(sources, short),
        random=Returns(**summary(choice.random_returns)),
        medium=MediumPolicy(
            **shipped(f"{short}/medium.msgpack", choice.medium_step), target=choice.target
        ),
        expert=ExpertPolicy(
            **shipped(f"{short}/expert.msgpack", choice.expert_step),
            below_threshold=choice.below_threshold,
        ),
        replay=tuple(replay),
    )


def training_record(sources: Sources, short: str) -> Training:
    """How the shipped run trained, and the commands that train it (and its replay re-run)."""
    run = sources.run
    replay_command = None
    if sources.replay_run is not None:
        replay_command = train_command(read_run(sources.replay_run, run.env), "-replay")
    return Training(
        seed=run.seed,
        steps=run.protocol["steps"],
        trained_steps=max(sources.recorded),
        config=run.config,
        protocol=run.protocol,
        command=train_command(run),
        replay_command=replay_command,
        curve=f"{short}/curve.png",
    )
