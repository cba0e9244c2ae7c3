"""The one training loop: `eval_every` updates per chunk, run as compiled `lax.scan`s of
`log_every` updates (`offrl.fused`), vmapped over seeds.

The host is visited after each scan, to record the losses and move the progress bar, and after
each chunk, to evaluate, append records and checkpoint. The scans carry the PRNG keys and states
from one to the next, so how a chunk is cut into scans changes no number. A run folder that holds
a checkpoint resumes from it and ends with the same numbers as an uninterrupted run (same
compiled programs, same carried PRNG keys, same evaluation seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from offrl import __version__
from offrl.agent import (
    DatasetSpec,
    agent_name,
    behavior_version,
    canonical_config,
    checked_agent,
    official_config,
    prepare_for,
)
from offrl.checkpoint import Checkpointer
from offrl.chunk import (
    TrainedChunk,
    bar_postfix,
    diverged_message,
    finish_chunk,
    resumed_clock,
    run_scans,
    scan_lengths,
    what_is_kept,
    window_losses,
)
from offrl.data.normalization import (
    ObsNormalizer,
    fit_normalizer,
    identity_normalizer,
    normalize_transitions,
    transform_rewards,
)
from offrl.data.transitions import Transitions, checksum, to_device
from offrl.envs import action_bound
from offrl.errors import ConfigError, TrainingDiverged
from offrl.evaluate import (
    ChunkEvaluator,
    check_eval_workers,
    evaluate_states,
    evaluation_envs,
)
from offrl.fused import Carry, act_fn, init_carry, make_train_chunk
from offrl.locks import hold
from offrl.loggers import (
    WandbOptions,
    evaluation_scalars,
    open_run_loggers,
    tensorboard_writer_type,
    train_scalars,
    wandb_module,
)
from offrl.progress import progress_shown
from offrl.run_files import LOSSES, truncate_records
from offrl.run_folder import check_resume, warn
from offrl.run_manifest import (
    Normalization,
    RunManifest,
    git_commit,
    write_run_manifest,
)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How long to train and how to evaluate; stated in every record."""

    steps: int = 1_000_000
    eval_every: int = 5_000
    eval_episodes: int = 10

    def validate(self) -> None:
        for name in ("steps", "eval_every", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )


@dataclasses.dataclass
class FitResult:
    carry: Carry
    """Final states, leading axis = seed."""
    normalizer: ObsNormalizer
    records: list[dict]
    run_dir: Path | None


def prepare_data(transitions: Transitions, config: Any) -> tuple[Transitions, ObsNormalizer]:
    """Reward transform and state normalisation on the host, then one copy to the device."""
    transitions = transform_rewards(transitions, config.reward_scale, config.reward_shift)
    if config.normalize_states:
        normalizer = fit_normalizer(np.asarray(transitions.observations))
    else:
        normalizer = identity_normalizer(transitions.obs_dim)
    return to_device(normalize_transitions(transitions, normalizer)), normalizer


def checked_seeds(seeds: Sequence[int]) -> list[int]:
    """Distinct seeds, at least one, each a valid uint32 PRNG seed."""
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct and at least one, got {seeds}")
    if not all(0 <= seed < 2**32 for seed in seeds):
        raise ConfigError(f"seeds must be in [0, 2^32) (PRNG keys are uint32), got {seeds}")
    return seeds


def check_log_every(log_every: int) -> None:
    if log_every < 1:
        raise ConfigError(f"--log-every must be >= 1, got {log_every}")


def describe_run(
    agent: ModuleType,
    config: Any,
    seeds: list[int],
    protocol: Protocol,
    task: Any,
    data: Transitions,
    data_checksum: str,
    spec: DatasetSpec,
    normalizer: ObsNormalizer,
) -> RunManifest:
    """The run.json record of a run about to train."""
    return RunManifest(
        agent=agent_name(agent),
        behavior_version=behavior_version(agent),
        task=None if task is None else task.name,
        config=canonical_config(config),
        seeds=tuple(seeds),
        eval_every=protocol.eval_every,
        eval_episodes=protocol.eval_episodes,
        steps=protocol.steps,
        checksum=data_checksum,
        dataset_size=data.size,
        spec=spec,
        normalizer=Normalization(tuple(normalizer.mean.tolist()), tuple(normalizer.std.tolist())),
        offrl_version=__version__,
        git_commit=git_commit(),
    )


def open_run_folder(
    held: contextlib.ExitStack, run_dir: Path, manifest: RunManifest, carry: Carry
) -> tuple[Checkpointer, int, Carry]:
    """Hold the folder (released with `held`), resume its newest intact checkpoint if it has
    one, and write the manifest; returns the checkpointer, the step reached and the carry."""
    held.enter_context(hold(run_dir, "run folder"))
    # Again, now that no other writer can change the folder.
    stored = check_resume(run_dir, manifest)
    checkpointer = held.enter_context(contextlib.closing(Checkpointer(run_dir)))
    start = 0
    if stored is not None:
        restored = checkpointer.restore_latest_intact(carry, warn)
        if restored is not None:
            start, carry, _ = restored
    # Records past the resumed checkpoint (all of them when there is none) describe no saved
    # state: a kill between a chunk's records and its checkpoint leaves such records.
    truncate_records(run_dir, start)
    truncate_records(run_dir, start, LOSSES)
    write_run_manifest(run_dir, manifest)
    return checkpointer, start, carry


def fit(
    agent: ModuleType,
    transitions: Transitions,
    config: Any = None,
    *,
    seeds: Sequence[int] = (0,),
    steps: int = 1_000_000,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    log_every: int = 1_000,
    task: Any = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    wandb: WandbOptions | None = None,
    overlap_evaluation: bool = True,
    eval_workers: int | None = None,
) -> FitResult:
    """Train `agent` on raw `transitions`, one compiled program for all `seeds`.

    `config` defaults to the agent's official config for `task` (`offrl.agent.official_config`).
    `task` (an `offrl.data.registry.Task`) enables evaluation in its gymnasium env with the
    normalised score; `out_dir` enables records, checkpoints and resuming. Every `log_every`
    updates (at most `eval_every`) the losses are recorded and the progress bar moves; this
    cadence changes no number of the run. `tensorboard` and `wandb` add loggers
    (docs/logging.md). Each chunk's evaluation runs while the next chunk trains, and its records
    and checkpoint are written once it is done (`overlap_evaluation` False: before the next chunk
    starts); its envs step in `eval_workers` processes (`offrl.evaluate.evaluation_envs`). The
    numbers are the same either way.
    """
    began = time.perf_counter()
    agent = checked_agent(agent)
    if config is None:
        config = official_config(agent, None if task is None else task.name)
    protocol = Protocol(steps, eval_every, eval_episodes)
    protocol.validate()
    check_log_every(log_every)
    check_eval_workers(eval_workers)
    seeds = checked_seeds(seeds)
    run_dir = None if out_dir is None else Path(out_dir)
    # Missing logger packages are refused before anything is read, compiled or written.
    writer_type = tensorboard_writer_type(run_dir) if tensorboard else None
    wandb_package = None if wandb is None else wandb_module(wandb)
    data_checksum = checksum(transitions)
    data, normalizer = prepare_data(transitions, config)
    max_action = 1.0 if task is None else action_bound(task.env_spec)
    spec = DatasetSpec(data.obs_dim, data.action_dim, max_action)
    manifest = describe_run(
        agent, config, seeds, protocol, task, data, data_checksum, spec, normalizer
    )
    # A run folder that cannot be resumed is refused before anything is compiled or written.
    if run_dir is not None:
        check_resume(run_dir, manifest, on_fresh_start=lambda _: None)  # said under the hold
    # The run folder's hold and checkpointer, the loggers, the envs, the bar: closed in reverse.
    with contextlib.ExitStack() as held, progress_shown(progress):
        carry = init_carry(agent, spec, config, seeds)
        checkpointer, start = None, 0
        if run_dir is not None:
            checkpointer, start, carry = open_run_folder(held, run_dir, manifest, carry)
        clock = resumed_clock(run_dir, start, began)
        loggers = open_run_loggers(
            held, writer_type, wandb_package, wandb, manifest, log_every, run_dir
        )
        base = {
            "agent": manifest.agent,
            "behavior_version": manifest.behavior_version,
            "task": manifest.task,
            "protocol": {
                "eval_episodes": protocol.eval_episodes,
                "eval_every": protocol.eval_every,
                "total_steps": protocol.steps,
                "batch_size": config.batch_size,
            },
        }
        policy = act_fn(agent, carry, normalizer)
        prepared = prepare_for(agent, data, config)
        envs = None
        if task is not None:
            episodes = len(seeds) * protocol.eval_episodes
            envs = evaluation_envs(task.env_spec, episodes, eval_workers)
            held.callback(envs.close)
        scans: dict[int, Any] = {}
        records: list[dict] = []
        bar = held.enter_context(
            tqdm(
                total=protocol.steps,
                initial=start,
                disable=not progress,
                unit="upd",
                desc=f"{manifest.agent} {manifest.task or ''}".strip(),
                dynamic_ncols=True,
            )
        )
        evaluator = held.enter_context(ChunkEvaluator(overlap_evaluation))
        evaluation, pending, held_back = "", None, []

        def finish(chunk: TrainedChunk) -> None:
            """A trained chunk's records and checkpoint, once its evaluation is done; then the
            loss scalars held back meanwhile, so loggers see steps in order (W&B drops a step
            older than one it has)."""
            nonlocal evaluation
            new_records, evaluation = finish_chunk(chunk, seeds, base, run_dir, checkpointer, clock)
            records.extend(new_records)
            loggers.log([evaluation_scalars(record) for record in new_records], chunk.step)
            for scalars, step in held_back:
                loggers.log(scalars, step)
            held_back.clear()

        while start < protocol.steps:
            n = min(protocol.eval_every, protocol.steps - start)
            lengths = scan_lengths(n, log_every)
            for length in sorted(set(lengths) - scans.keys()):
                scans[length] = _compile_scan(agent, carry, data, prepared, config, length, bar)
            began = time.perf_counter()
            step, chunk_metrics, loss_records = start, [], []
            for scanned in run_scans(scans, lengths, carry, data, prepared):
                if not scanned.healthy:
                    message = diverged_message(
                        agent, carry, data, prepared, config, step, scanned.length
                    )
                    if pending is not None:
                        finish(pending)  # the last good checkpoint the message names
                    raise TrainingDiverged(message + what_is_kept(start, run_dir))
                carry, step = scanned.carry, step + scanned.length
                chunk_metrics.append(scanned.metrics)
                losses = window_losses(scanned.metrics)
                loss_records += [
                    {"seed": seed, "step": step, "losses": seed_losses}
                    for seed, seed_losses in zip(seeds, losses, strict=True)
                ]
                # An evaluation done early in this chunk is written at once (its checkpoint too).
                if pending is not None and pending.evaluation.done():
                    finish(pending)
                    pending = None
                scalars = [train_scalars(seed_losses) for seed_losses in losses]
                if pending is None:
                    loggers.log(scalars, step)
                else:
                    held_back.append((scalars, step))
                # The postfix first: the update draws the bar with this scan's losses.
                bar.set_postfix_str(bar_postfix(losses, evaluation), refresh=False)
                bar.update(scanned.length)
            metrics = {
                name: np.concatenate([m[name] for m in chunk_metrics], axis=1)
                for name in chunk_metrics[0]
            }
            evaluate = functools.partial(
                evaluate_states, policy, carry.agent, envs, seeds, protocol.eval_episodes, task
            )
            trained = TrainedChunk(
                step,
                n,
                carry,
                metrics,
                loss_records,
                n / (time.perf_counter() - began),
                evaluator.start(evaluate),
            )
            # The chunk before this one: its evaluation ran while this one trained.
            if pending is not None:
                finish(pending)
                bar.set_postfix_str(bar_postfix(losses, evaluation), refresh=False)
            pending, start = trained, step
        if pending is not None:
            finish(pending)
            bar.set_postfix_str(bar_postfix(losses, evaluation), refresh=False)
        return FitResult(carry=carry, normalizer=normalizer, records=records, run_dir=run_dir)


def _compile_scan(
    agent: ModuleType,
    carry: Carry,
    data: Transitions,
    prepared: Any,
    config: Any,
    length: int,
    bar: tqdm,
) -> Any:
    """The compiled scan of `length` updates; the bar says so while it compiles (seconds to
    minutes) and how long it took."""
    bar.set_postfix_str(f"compiling the {length}-update step", refresh=True)
    began = time.perf_counter()
    scan = make_train_chunk(agent, carry, length, config.batch_size)
    compiled = scan.lower(carry, data, prepared).compile()
    bar.set_postfix_str(f"compiled in {time.perf_counter() - began:.0f} s", refresh=True)
    return compiled
