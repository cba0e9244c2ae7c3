"""`fit_many`: `fit` for several datasets of equal shapes (one environment's datasets: hopper
medium, medium-replay, medium-expert, ...), every (dataset, seed) run in one compiled program.

Each dataset keeps what `fit` gives it alone: its normaliser, its row count, its run folder
(run.json, records, checkpoints, resuming) and its evaluation; each run its PRNG stream. So each
member ends with the records and states of its own `fit` call, up to float rounding, and its
folder resumes under `fit` as well as under `fit_many`. Members that cannot share the program
(folders resumed at different steps, or `prepare` results that do not stack, such as PRDC's FAISS
indexes) are trained one after another, each in `fit`'s own program.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from offrl.agent import DatasetSpec, official_config
from offrl.checkpoint import Checkpointer
from offrl.chunk import (
    RunClock,
    TrainedChunk,
    bar_postfix,
    diverged_message,
    finish_chunk,
    resumed_clock,
    run_scans,
    scan_lengths,
    window_losses,
)
from offrl.data.normalization import ObsNormalizer
from offrl.data.transitions import Transitions, checksum
from offrl.envs import action_bound
from offrl.errors import ConfigError, TrainingDiverged
from offrl.evaluate import (
    ChunkEvaluator,
    check_eval_workers,
    evaluate_states,
    evaluation_envs,
)
from offrl.fused import Carry, act_fn, healthy, init_carry, make_train_chunk
from offrl.grouped import (
    make_group_chunk,
    member_carry,
    stack_carries,
    stack_datasets,
    stack_prepared,
)
from offrl.run_folder import check_resume
from offrl.run_manifest import RunManifest
from offrl.train import (
    FitResult,
    Protocol,
    agent_name,
    check_log_every,
    checked_seeds,
    describe_run,
    open_run_folder,
    prepare_data,
)


@dataclasses.dataclass(frozen=True)
class GroupMember:
    """One dataset of a group: raw transitions, the task it is evaluated in, its run folder."""

    transitions: Transitions
    task: Any = None
    out_dir: str | Path | None = None


@dataclasses.dataclass
class MemberRun:
    """A member's state along the group's training: what `fit` keeps for its one dataset."""

    task: Any
    data: Transitions
    normalizer: ObsNormalizer
    manifest: RunManifest
    run_dir: Path | None
    carry: Carry | None = None
    start: int = 0
    checkpointer: Checkpointer | None = None
    prepared: Any = None
    envs: Any = None
    policy: Callable | None = None
    """The seeds' batched policies on raw observations (this member's normaliser inside)."""
    records: list[dict] = dataclasses.field(default_factory=list)
    clock: RunClock | None = None
    """Its wall time across invocations (set when its folder is opened)."""


def group_config(agent: ModuleType, members: Sequence[GroupMember]) -> Any:
    """The agent's official config, which must be the same for every member's task."""
    configs = {official_config(agent, _task_name(m.task)) for m in members}
    if len(configs) != 1:
        raise ConfigError(
            "fit_many trains one config: the members' tasks have different official configs; "
            "pass config= or group the tasks by environment family"
        )
    return configs.pop()


def _task_name(task: Any) -> str | None:
    return None if task is None else task.name


def plan_member(
    agent: ModuleType, member: GroupMember, config: Any, seeds: list[int], protocol: Protocol
) -> MemberRun:
    """`fit`'s checks and data preparation for one member, before anything is held or written."""
    data_checksum = checksum(member.transitions)
    data, normalizer = prepare_data(member.transitions, config)
    max_action = 1.0 if member.task is None else action_bound(member.task.env_spec)
    spec = DatasetSpec(data.obs_dim, data.action_dim, max_action)
    manifest = describe_run(
        agent, config, seeds, protocol, member.task, data, data_checksum, spec, normalizer
    )
    run_dir = None if member.out_dir is None else Path(member.out_dir)
    if run_dir is not None:
        check_resume(run_dir, manifest, on_fresh_start=lambda _: None)  # said under the hold
    return MemberRun(member.task, data, normalizer, manifest, run_dir)


def check_group(runs: Sequence[MemberRun]) -> DatasetSpec:
    """The members' one DatasetSpec; distinct run folders."""
    specs = {run.manifest.spec for run in runs}
    if len(specs) != 1:
        raise ConfigError(
            "fit_many needs datasets of equal observation and action sizes and action bounds, "
            f"got {sorted(map(str, specs))}"
        )
    folders = [run.run_dir.resolve() for run in runs if run.run_dir is not None]
    if len(set(folders)) != len(folders):
        raise ConfigError("fit_many needs one run folder per member, got a folder twice")
    return specs.pop()


def cohorts(agent: ModuleType, runs: Sequence[MemberRun]) -> list[tuple[list[MemberRun], Any]]:
    """The members that train together, each cohort with its stacked `prepared`: those resumed
    at the same step, when their `prepare` results stack; otherwise one member per cohort."""
    grouped = []
    for start in sorted({run.start for run in runs}):
        same = [run for run in runs if run.start == start]
        if len(same) > 1:
            stackable, stacked = stack_prepared(agent, [run.prepared for run in same])
            if stackable:
                grouped.append((same, stacked))
                continue
        grouped += [([run], run.prepared) for run in same]
    return grouped


def member_views(carry: Carry, metrics: dict, size: int) -> list[tuple[Carry, dict]]:
    """Each member's carry and metrics (leading seed axis) out of a cohort's."""
    if size == 1:
        return [(carry, metrics)]
    return [
        (member_carry(carry, i), {name: value[i] for name, value in metrics.items()})
        for i in range(size)
    ]


def train_cohort(
    agent: ModuleType,
    cohort: list[MemberRun],
    prepared: Any,
    config: Any,
    seeds: list[int],
    protocol: Protocol,
    bar: tqdm,
    log_every: int,
    overlap_evaluation: bool = True,
) -> None:
    """`fit`'s chunk loop for a cohort: one compiled chunk for all its runs, then each member's
    health check, evaluation, records and checkpoint, as its own `fit` would do them."""
    if len(cohort) == 1:
        carry, data = cohort[0].carry, cohort[0].data
        make_chunk = make_train_chunk
    else:
        carry = stack_carries([run.carry for run in cohort])
        data = stack_datasets([run.data for run in cohort])
        make_chunk = make_group_chunk
    start = cohort[0].start
    scans: dict[int, Any] = {}
    evaluation, pending = "", []

    def finish(trained: list[TrainedChunk]) -> None:
        """Each member's records and checkpoint of a trained chunk, once its evaluation is done."""
        nonlocal evaluation
        for run, chunk in zip(cohort, trained, strict=True):
            base = run_base(run, protocol, config)
            records, evaluation = finish_chunk(
                chunk, seeds, base, run.run_dir, run.checkpointer, run.clock
            )
            run.records.extend(records)

    with ChunkEvaluator(overlap_evaluation) as evaluator:
        while start < protocol.steps:
            n = min(protocol.eval_every, protocol.steps - start)
            lengths = scan_lengths(n, log_every)
            for length in sorted(set(lengths) - scans.keys()):
                chunk = make_chunk(agent, carry, length, config.batch_size)
                scans[length] = chunk.lower(carry, data, prepared).compile()
            began = time.perf_counter()
            step, chunk_views, loss_records = start, [], [[] for _ in cohort]
            for scanned in run_scans(scans, lengths, carry, data, prepared):
                views = member_views(scanned.carry, scanned.metrics, len(cohort))
                for run, (run_carry, run_metrics) in zip(cohort, views, strict=True):
                    if not bool(healthy(run_carry.agent, run_metrics)):
                        message = diverged_message(
                            agent, run.carry, run.data, run.prepared, config, step, scanned.length
                        )
                        if pending:
                            finish(pending)  # every member's last good checkpoint
                        raise TrainingDiverged(f"{run.manifest.task or 'a member'}: {message}")
                carry, step = scanned.carry, step + scanned.length
                chunk_views.append(views)
                for lines, (_, run_metrics) in zip(loss_records, views, strict=True):
                    lines += [
                        {"seed": seed, "step": step, "losses": seed_losses}
                        for seed, seed_losses in zip(seeds, window_losses(run_metrics), strict=True)
                    ]
                # An evaluation done early in this chunk is written at once (its checkpoint too).
                if pending and all(chunk.evaluation.done() for chunk in pending):
                    finish(pending)
                    pending = []
                losses = window_losses(views[0][1])
                bar.set_postfix_str(bar_postfix(losses, evaluation), refresh=False)
                bar.update(scanned.length * len(cohort))
            updates_per_s = n / (time.perf_counter() - began)
            trained = []
            for i, run in enumerate(cohort):
                run_carry = chunk_views[-1][i][0]
                run_metrics = {
                    name: np.concatenate([views[i][1][name] for views in chunk_views], axis=1)
                    for name in chunk_views[0][i][1]
                }
                run.carry, run.start = run_carry, step
                evaluate = functools.partial(
                    evaluate_states,
                    run.policy,
                    run_carry.agent,
                    run.envs,
                    seeds,
                    protocol.eval_episodes,
                    run.task,
                )
                future = evaluator.start(evaluate)
                trained.append(
                    TrainedChunk(
                        step, n, run_carry, run_metrics, loss_records[i], updates_per_s, future
                    )
                )
            # The chunk before this one: its evaluations ran while this one trained.
            if pending:
                finish(pending)
            pending, start = trained, step
        if pending:
            finish(pending)


def run_base(run: MemberRun, protocol: Protocol, config: Any) -> dict:
    """The fields every record of a member's run carries, as `fit` writes them."""
    return {
        "agent": run.manifest.agent,
        "behavior_version": run.manifest.behavior_version,
        "task": run.manifest.task,
        "protocol": {
            "eval_episodes": protocol.eval_episodes,
            "eval_every": protocol.eval_every,
            "total_steps": protocol.steps,
            "batch_size": config.batch_size,
        },
    }


def fit_many(
    agent: ModuleType,
    members: Sequence[GroupMember],
    config: Any = None,
    *,
    seeds: Sequence[int] = (0,),
    steps: int = 1_000_000,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    progress: bool = True,
    log_every: int = 1_000,
    overlap_evaluation: bool = True,
    eval_workers: int | None = None,
) -> list[FitResult]:
    """Train `agent` with one config and the same `seeds` on every member's dataset, all
    (datasets x seeds) runs in one compiled program; one `FitResult` per member, as its own
    `fit` call returns it (same records and states up to float rounding, same run folder).

    `config` defaults to the agent's official config for the members' tasks, which must agree;
    evaluation overlaps training and steps in `eval_workers` processes, as in `fit`.
    """
    if not members:
        raise ConfigError("fit_many needs at least one member")
    if config is None:
        config = group_config(agent, members)
    protocol = Protocol(steps, eval_every, eval_episodes)
    protocol.validate()
    seeds = checked_seeds(seeds)
    check_log_every(log_every)
    check_eval_workers(eval_workers)
    began = time.perf_counter()
    runs = [plan_member(agent, member, config, seeds, protocol) for member in members]
    spec = check_group(runs)
    with contextlib.ExitStack() as held:  # run folders' holds, checkpointers, envs
        initial = init_carry(agent, spec, config, seeds)
        for run in runs:
            run.carry = initial
            if run.run_dir is not None:
                run.checkpointer, run.start, run.carry = open_run_folder(
                    held, run.run_dir, run.manifest, initial
                )
            run.clock = resumed_clock(run.run_dir, run.start, began)
            run.policy = act_fn(agent, initial, run.normalizer)
            run.prepared = agent.prepare(run.data, config)
            if run.task is not None:
                run.envs = evaluation_envs(
                    run.task.env_spec, len(seeds) * eval_episodes, eval_workers
                )
                held.callback(run.envs.close)
        tasks = " ".join(str(run.manifest.task or "") for run in runs).strip()
        bar = tqdm(
            total=protocol.steps * len(runs),
            initial=sum(run.start for run in runs),
            disable=not progress,
            unit="upd",
            desc=f"{agent_name(agent)} {tasks}".strip(),
            dynamic_ncols=True,
        )
        with contextlib.closing(bar):
            for cohort, prepared in cohorts(agent, runs):
                train_cohort(
                    agent,
                    cohort,
                    prepared,
                    config,
                    seeds,
                    protocol,
                    bar,
                    log_every,
                    overlap_evaluation,
                )
    return [
        FitResult(
            carry=run.carry, normalizer=run.normalizer, records=run.records, run_dir=run.run_dir
        )
        for run in runs
    ]
