"""`offrl train | eval | data`: the command line, one verb per concern.

Every verb's flags come from typed dataclasses and function signatures (tyro), so `--help`
documents each one; an agent's hyper-parameters become flags of `offrl train --agent NAME`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tyro

from offrl import __version__
from offrl.errors import ConfigError, OffrlError

VERBS = {
    "train": "train an agent on a task (resumes when --out holds a checkpoint)",
    "eval": "evaluate the latest checkpoint of a run folder",
    "export": "write one seed's trained policy as a self-contained file (loads with JAX alone)",
    "data": "datasets: list | info TASK | make TASK | collect",
    "behavior": "behaviour policies: train (online SAC, resumable) | ship | ship-navigator | plot",
    "bench": "run a bench profile (default | smoke | repro | antmaze | full) into the store",
    "peer": "train d3rlpy's TD3+BC / PRDC on a profile's data, stored beside offrl's runs",
    "status": "what a bench profile's store holds and lacks, ours and the peers' (trains nothing)",
    "leaderboard": "LEADERBOARD.md, leaderboard.html and plots from the results store",
}


@dataclasses.dataclass
class TrainArgs:
    """Train an agent on an offline dataset; all seeds in one compiled program."""

    task: str
    """Task name: offrl/<env>/<level>-v0 (generated here: `offrl data list`), d4rl/<name> (a D4RL
    hdf5 file on disk) or minari/<dataset-id>."""
    agent: str = "td3bc"
    """Agent to train: a built-in one (td3bc, prdc, a2pr, ggdtd) or the import path of your own
    agent module (mypkg.myagent; docs/writing-an-agent.md); `offrl train --agent NAME --help`
    lists its hyper-parameters."""
    seeds: int = 1
    """Number of seeds, trained together (vmapped): seeds seed .. seed + seeds - 1."""
    seed: int = 0
    """First seed."""
    steps: int = 1_000_000
    """Gradient steps per seed."""
    eval_every: int = 5_000
    """Updates fused per compiled call; evaluation, records and checkpoint after each."""
    eval_episodes: int = 10
    """Evaluation episodes per seed."""
    log_every: int = 1_000
    """Updates between loss records (OUT/losses.jsonl, TensorBoard, W&B) and moves of the
    progress bar; at most --eval-every. Changes no result."""
    eval_workers: int | None = None
    """Processes stepping the evaluation envs (1: in this one); default 1 when JAX trains on
    the CPU, else one per spare host core. Changes no result."""
    out: Path | None = None
    """Run folder (records, checkpoints); default runs/AGENT/TASK. A folder holding a run of
    the same settings is resumed from its last checkpoint."""
    progress: bool = True
    """Show the progress bar."""
    tensorboard: bool = False
    """Also write TensorBoard event files to OUT/tensorboard/seed<N> (needs offrl[tensorboard])."""
    wandb: str | None = None
    """Also log to this Weights & Biases project, one run per seed (needs offrl[wandb])."""
    wandb_entity: str | None = None
    """W&B user or team (default: your default entity)."""
    wandb_group: str | None = None
    """W&B group of the seeds' runs (default: AGENT-TASK)."""
    wandb_mode: Literal["online", "offline"] | None = None
    """online, or offline: kept in OUT/wandb for `wandb sync` (default: $WANDB_MODE, else
    online)."""
    class_defaults: bool = False
    """Start from the agent's Config defaults instead of its official values for the task."""
    config: Path | None = None
    """A YAML or TOML file of Config fields (as --save-config writes), applied on top of the
    starting values; flags still override it."""
    save_config: Path | None = None
    """Write the resolved config to this YAML or TOML file and exit without training."""


def _train_args_type(start: Any) -> type:
    """TrainArgs plus the agent's Config fields as top-level flags (--alpha, --actor-lr, ...),
    their defaults those of `start`."""
    config_field = (
        "hyperparameters",
        Annotated[type(start), tyro.conf.OmitArgPrefixes],
        dataclasses.field(default_factory=lambda: start),
    )
    return dataclasses.make_dataclass("TrainCommand", [config_field], bases=(TrainArgs,))


def _starting_config(agent: Any, task: str | None, class_defaults: bool, file: Path | None):
    """The config flags apply to, and where it comes from: the official values for the task
    (or the class defaults), then the config file."""
    from offrl.agent import official_config, official_overrides
    from offrl.config_files import apply_config_file

    if class_defaults:
        config, source = agent.Config(), "the Config defaults (--class-defaults)"
    else:
        config = official_config(agent, task)
        overrides = official_overrides(agent, task)
        source = (
            f"the official values for {task} {overrides}"
            if overrides
            else ("the official values (the Config defaults for this task)")
        )
    if file is not None:
        config, source = apply_config_file(config, file), f"{source}, then {file}"
    return config, source


def _changed_fields(config: Any) -> str:
    """The fields that differ from the Config defaults, as name=value."""
    defaults = type(config)()
    changed = [
        f"{f.name}={getattr(config, f.name)!r}"
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    ]
    return ", ".join(changed) or "none"


def train(argv: list[str]) -> int:
    from offrl.agent import resolve_agent
    from offrl.data.registry import load_task
    from offrl.evaluate import check_eval_workers
    from offrl.loggers import WandbOptions, tensorboard_writer_type, wandb_module
    from offrl.progress import progress_shown
    from offrl.run_folder import check_out_folder
    from offrl.train import Protocol, check_log_every, fit

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--agent", default="td3bc")
    pre.add_argument("--task")
    pre.add_argument("--class-defaults", action="store_true")
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    agent = resolve_agent(known.agent)
    start, source = _starting_config(agent, known.task, known.class_defaults, known.config)
    args = tyro.cli(
        _train_args_type(start),
        args=argv,
        prog="offrl train",
        description=(
            f"{TrainArgs.__doc__} Hyper-parameters shown: --agent {known.agent}, defaults from "
            f"{source}."
        ),
    )
    if args.save_config is not None:
        from offrl.config_files import write_config

        print(f"wrote {write_config(args.save_config, args.hyperparameters)}")
        return 0
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    Protocol(args.steps, args.eval_every, args.eval_episodes).validate()
    check_log_every(args.log_every)
    check_eval_workers(args.eval_workers)
    out = args.out or Path("runs") / known.agent / args.task
    check_out_folder(out)  # before the data is read: a wrong --out costs nothing
    if args.tensorboard:
        tensorboard_writer_type(out)
    wandb = None
    if args.wandb is not None:
        wandb = WandbOptions(args.wandb, args.wandb_entity, args.wandb_group, args.wandb_mode)
        wandb_module(wandb)
    with progress_shown(args.progress):
        loaded = load_task(args.task)
    if loaded.task.source == "offrl":
        from offrl.data.generate import nonstandard

        preview = nonstandard(loaded.task.name)
        if preview:
            print(
                f"offrl: warning: {loaded.task.name} on disk holds {preview}: its scores are not "
                "comparable with the benchmark's (`offrl data make TASK --overwrite` makes it)",
                file=sys.stderr,
            )
    print(
        f"offrl train: {known.agent} on {args.task}; config from {source} and the flags; "
        f"differs from the Config defaults in: {_changed_fields(args.hyperparameters)}",
        file=sys.stderr,
    )
    result = fit(
        agent,
        loaded.transitions,
        args.hyperparameters,
        seeds=range(args.seed, args.seed + args.seeds),
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        log_every=args.log_every,
        task=loaded.task,
        out_dir=out,
        eval_workers=args.eval_workers,
        progress=args.progress,
        tensorboard=args.tensorboard,
        wandb=wandb,
    )
    print(summarize(result.run_dir))
    return 0


def summarize(run_dir: Path, window: int = 10) -> str:
    """Per seed: last evaluation and mean of the last `window` evaluations (TD3+BC's rule)."""
    from offrl.run_files import read_records
    from offrl.run_manifest import read_run_manifest

    manifest = read_run_manifest(run_dir)
    records = read_records(run_dir)
    lines = [f"run {run_dir}: {manifest.agent} on {manifest.task}"]
    for seed in manifest.seeds:
        mine = [r for r in records if r["seed"] == seed]
        if not mine:
            continue
        key = "normalized_score" if mine[-1].get("normalized_score") is not None else "return"
        last = [r[key] for r in mine[-window:] if r.get(key) is not None]
        if not last:
            continue
        lines.append(
            f"  seed {seed}: step {mine[-1]['step']}, {key} last {last[-1]:.1f}, "
            f"mean of last {len(last)} evaluations {np.mean(last):.1f}"
        )
    return "\n".join(lines)


def export_policy(
    run_dir: tyro.conf.Positional[Path],
    out: Path,
    seed: int | None = None,
    step: int | None = None,
) -> int:
    """Write one seed's policy (raw observations in, actions out) as one self-contained file.

    Load it without offrl: read the first line (JSON metadata), then
    `jax.export.deserialize(bytearray(rest)).call(observations)`; or `offrl.policy.load_exported`.

    Args:
        run_dir: A folder written by `offrl train`.
        out: The policy file to write.
        seed: The seed whose policy to export (default: the run's first).
        step: Checkpoint step (default: the latest).
    """
    from offrl.policy import load_policy
    from offrl.run_manifest import read_run_manifest

    policy = load_policy(run_dir, seed=seed, step=step)
    manifest = read_run_manifest(run_dir)
    metadata = {"agent": manifest.agent, "task": manifest.task, "run_dir": str(run_dir)}
    metadata |= {"seed": manifest.seeds[0] if seed is None else seed, "step": policy.step}
    print(f"wrote {policy.export(out, metadata)}")
    return 0


def evaluate_run(
    run_dir: tyro.conf.Positional[Path], episodes: int | None = None, step: int | None = None
) -> int:
    """Evaluate a run folder's checkpoint in its task's environment, every seed at once.

    Args:
        run_dir: A folder written by `offrl train`.
        episodes: Episodes per seed (default: the run's own evaluation episodes).
        step: Checkpoint step to evaluate (default: the latest).
    """
    from offrl.run_eval import evaluate_checkpoint

    print(evaluate_checkpoint(run_dir, episodes=episodes, step=step))
    return 0


def data(argv: list[str]) -> int:
    from offrl.data import commands, generate

    def list_(verify: bool = False) -> None:
        """Every known task: source, on disk or not, size, reference scores, checksum status.

        Args:
            verify: Re-read every cached dataset that recorded a checksum and verify it (slow).
        """
        print(commands.list_tasks(verify))

    def info(task: tyro.conf.Positional[str]) -> None:
        """Everything about one task's dataset.

        Args:
            task: Task name, e.g. d4rl/hopper-medium-v2 or minari/<dataset-id>.
        """
        print(commands.info(task))

    def collect(
        env: str,
        dataset_id: str,
        policy: str = "random",
        steps: int = 10_000,
        seed: int = 0,
        overwrite: bool = False,
    ) -> None:
        """Roll a policy out in a real gymnasium env and write a Minari dataset.

        Args:
            env: Gymnasium environment id, e.g. Hopper-v5.
            dataset_id: Minari dataset id to write (not a folder: Minari's cache holds it), e.g.
                local/hopper-random-v0; load it as minari/<id>.
            policy: Behaviour policy: random (uniform actions).
            steps: Transitions to collect.
            seed: Seed of the env and the policy.
            overwrite: Replace an existing dataset with the same id.
        """
        print(commands.collect_command(env, policy, steps, dataset_id, seed, overwrite))

    def make(
        task: tyro.conf.Positional[Annotated[str | None, tyro.conf.arg(metavar="TASK")]] = None,
        all: bool = False,
        seed: int = 0,
        steps: Annotated[int | None, tyro.conf.arg(metavar="N")] = None,
        overwrite: bool = False,
        workers: int = generate.WORKERS,
        progress: bool = True,
    ) -> None:
        """Make an embedded dataset (offrl/<env>/<level>-v0) from the shipped behaviour policies
        and write it to the local Minari cache; no network needed.

        Args:
            task: Embedded task, e.g. offrl/hopper/medium-v0 (`offrl data list` shows them all).
            all: Make every embedded dataset not yet on disk, one progress bar each.
            seed: Seed of the envs and of the policies' action samples (same seed, same data).
            steps: Transitions to make instead of the standard size (1M; medium-expert 2M).
            overwrite: Replace a dataset already on disk.
            workers: Processes stepping the environments (the data does not depend on it).
            progress: Show progress bars.
        """
        lines = commands.make_command(task, all, seed, steps, overwrite, workers, progress)
        for line in lines:
            print(line, flush=True)

    tyro.extras.subcommand_cli_from_dict(
        {"list": list_, "info": info, "make": make, "collect": collect},
        prog="offrl data",
        args=argv,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(f"offrl {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        usage = (
            "usage: offrl {"
            + ",".join(VERBS)
            + "} ...\n\n"
            + "\n".join(f"  {verb:11} {text}" for verb, text in VERBS.items())
        )
        usage += "\n\nRun `offrl VERB --help` for a verb's flags, `offrl --version` for offrl's."
        if argv and argv[0] in ("-h", "--help"):
            print(usage)
            return 0
        problem = f"unknown command {argv[0]!r}" if argv else "a command is required"
        print(f"offrl: error: {problem}\n{usage}", file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    try:
        if verb == "train":
            return train(rest)
        if verb == "export":
            return tyro.cli(export_policy, args=rest, prog="offrl export")
        if verb == "eval":
            return tyro.cli(evaluate_run, args=rest, prog="offrl eval")
        if verb == "behavior":
            from offrl.behavior import command

            return command.main(rest)
        if verb == "bench":
            from benchmarks import runner

            return runner.main(rest)
        if verb == "peer":
            from benchmarks import peer

            return peer.main(rest)
        if verb == "status":
            from benchmarks import status

            return status.main(rest)
        if verb == "leaderboard":
            from benchmarks import leaderboard
            from offrl.agent import behavior_version, builtin_agents

            versions = {name: behavior_version(a) for name, a in builtin_agents().items()}
            return leaderboard.main(rest, versions)
        return data(rest)
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
