"""`offrl bench`: a profile's (agent, task, seed group) runs, trained and stored, then the board.

Each run (an agent on a task for a group of seeds, vmapped) has its own folder under
`<results>/runs/`, so an interrupted bench resumes every unfinished run from its checkpoint. Runs
of one agent, config, protocol and seed group on one evaluation environment (hopper medium,
medium-replay, medium-expert, ...) train together, all their (dataset, seed) runs in one compiled
program (`offrl.train_group.fit_many`: each run with the numbers of its own `fit` call, up to float
rounding); `--no-group` trains each run alone.
Finished (agent and its behaviour version, task, seed, config, protocol, dataset checksum) keys in
the store are skipped unless `force`.
Executors: `local` (in this process, or `workers` processes) and `ray` (one Ray task per run).
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import tyro
from tqdm.auto import tqdm

from benchmarks import store
from benchmarks.configs import Profile, config_for, profile_named, select
from benchmarks.dataset_summaries import record_summaries
from benchmarks.datasets import task_checksums
from offrl.agent import behavior_version, resolve_agent
from offrl.data.registry import LoadedTask, load_task, resolve_task
from offrl.errors import ConfigError, DatasetError
from offrl.locks import hold
from offrl.progress import progress_shown
from offrl.train import Protocol, fit
from offrl.train_group import GroupMember, fit_many


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One `fit` call: an agent on a task for a group of seeds, under one protocol."""

    agent: str
    task: str
    seeds: tuple[int, ...]
    config: Any
    protocol: Protocol
    dataset_checksum: str

    @property
    def label(self) -> str:
        return f"{self.agent} {self.task} seeds {','.join(map(str, self.seeds))}"

    @property
    def behavior_version(self) -> int:
        return behavior_version(resolve_agent(self.agent))

    def run_dir(self, results: Path) -> Path:
        """One folder per (agent and its behaviour version, task, protocol, config, dataset,
        seeds): `fit` resumes only its own."""
        config_part = store.config_hash(self.config)[:8]
        protocol_part = store.protocol_hash(self.protocol)[:8]
        parts = (
            f"{protocol_part}-{config_part}-d{self.dataset_checksum[:8]}-b{self.behavior_version}"
        )
        seeds = "_".join(map(str, self.seeds))
        return results / "runs" / self.agent / self.task / f"{parts}-s{seeds}"


def plan(
    profile: Profile, checksums: Mapping[str, str], results: Path, force: bool = False
) -> list[RunSpec]:
    """Every (agent, task) of the profile with the seeds the store does not hold yet for the
    task's current data (`checksums`: task -> dataset checksum), agent by agent in the profile's
    order (the cheap ones first); the seeds of `profile.seed_by_seed` agents run one by one."""
    done = store.finished_keys(results / "runs.jsonl")
    protocol = Protocol(profile.steps, profile.eval_every, profile.eval_episodes)
    protocol_key = store.protocol_hash(protocol)
    specs = []
    for agent in profile.agents:
        for task, checksum in checksums.items():
            config = config_for(agent, task)
            config_key = store.config_hash(config)
            version = behavior_version(resolve_agent(agent))
            key = functools.partial(store.RunKey, agent, version, task)
            seeds = tuple(
                seed
                for seed in profile.seeds
                if force or key(seed, config_key, protocol_key, checksum) not in done
            )
            groups = [(seed,) for seed in seeds] if agent in profile.seed_by_seed else [seeds]
            specs += [RunSpec(agent, task, g, config, protocol, checksum) for g in groups if g]
    return specs


def group_key(spec: RunSpec) -> tuple:
    """What runs must share to train in one program: agent, config, protocol and seeds, and the
    evaluation environment (so equal observation and action sizes and action bounds)."""
    env_id = resolve_task(spec.task).env_spec.id
    return (spec.agent, store.config_hash(spec.config), spec.protocol, spec.seeds, env_id)


def group_runs(specs: Sequence[RunSpec], group: bool = True) -> list[tuple[RunSpec, ...]]:
    """The planned runs as units of work, in plan order: each `group_key`'s runs together, or
    (`group` False) one run per unit."""
    if not group:
        return [(spec,) for spec in specs]
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(group_key(spec), []).append(spec)
    return [tuple(runs) for runs in groups.values()]


def load_planned(spec: RunSpec, results: Path, fresh: bool, progress: bool) -> LoadedTask:
    """The run's dataset, refused when it is not the one planned; its folder emptied if `fresh`."""
    with progress_shown(progress):
        loaded = load_task(spec.task)
    if loaded.checksum != spec.dataset_checksum:
        raise DatasetError(
            f"{spec.task} at {loaded.path} has checksum {loaded.checksum[:16]}..., not the "
            f"{spec.dataset_checksum[:16]}... the bench planned with: the dataset changed since "
            "(or differs on this worker); run the bench again."
        )
    run_dir = spec.run_dir(results)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    return loaded


def execute(
    spec: RunSpec, results: Path, progress: bool = True, fresh: bool = False
) -> list[store.RunRecord]:
    """Train one run and return its per-seed records; its folder is resumed unless `fresh`."""
    loaded = load_planned(spec, results, fresh, progress)
    run_dir = spec.run_dir(results)
    began = time.perf_counter()
    fit(
        resolve_agent(spec.agent),
        loaded.transitions,
        spec.config,
        seeds=spec.seeds,
        steps=spec.protocol.steps,
        eval_every=spec.protocol.eval_every,
        eval_episodes=spec.protocol.eval_episodes,
        task=loaded.task,
        out_dir=run_dir,
        progress=progress,
    )
    return store.records_from_run_dir(run_dir, wall_s=time.perf_counter() - began)


def execute_group(
    group: Sequence[RunSpec], results: Path, progress: bool = True, fresh: bool = False
) -> list[store.RunRecord]:
    """Train a unit of `group_runs` (one run: `execute`) and return every run's per-seed
    records, each read from its own folder as `execute` reads it; `wall_s` is the group's."""
    if len(group) == 1:
        return execute(group[0], results, progress, fresh)
    members = [
        GroupMember(loaded.transitions, loaded.task, spec.run_dir(results))
        for spec, loaded in ((spec, load_planned(spec, results, fresh, progress)) for spec in group)
    ]
    first = group[0]
    began = time.perf_counter()
    fit_many(
        resolve_agent(first.agent),
        members,
        first.config,
        seeds=first.seeds,
        steps=first.protocol.steps,
        eval_every=first.protocol.eval_every,
        eval_episodes=first.protocol.eval_episodes,
        progress=progress,
    )
    wall_s = time.perf_counter() - began
    return [
        record
        for spec in group
        for record in store.records_from_run_dir(spec.run_dir(results), wall_s=wall_s)
    ]


def execute_and_store(
    group: Sequence[RunSpec], results: Path, progress: bool, fresh: bool
) -> list[str]:
    """A local worker's job: train a unit of runs, then append to the shared store (flock-safe);
    returns the runs' labels."""
    store.append(results / "runs.jsonl", execute_group(group, results, progress, fresh))
    return [spec.label for spec in group]


def run_local(
    groups: Sequence[Sequence[RunSpec]],
    results: Path,
    workers: int,
    fresh: bool,
    on_done: Callable,
) -> None:
    if workers <= 1:
        for group in groups:
            on_done(execute_and_store(group, results, True, fresh))
        return
    # spawn: JAX and its thread pools must not be forked.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(execute_and_store, g, results, False, fresh) for g in groups]
        for future in as_completed(futures):
            on_done(future.result())


def run_ray(
    groups: Sequence[Sequence[RunSpec]],
    results: Path,
    address: str | None,
    fresh: bool,
    on_done: Callable,
) -> None:
    """One Ray task per unit of runs; records come back to this process, which appends them."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError("--executor ray needs Ray: pip install 'offrl[ray]'") from err
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    except ConnectionError as err:
        raise ConfigError(
            f"no Ray cluster answers at --address {address} ({err}): start one with "
            "`ray start --head`, or leave --address out to start a local Ray instance"
        ) from None
    remote = ray.remote(num_cpus=1)(execute_group)
    pending = {remote.remote(group, results, False, fresh): group for group in groups}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        group = pending.pop(ready[0])
        store.append(results / "runs.jsonl", ray.get(ready[0]))
        on_done([spec.label for spec in group])


def bench(
    profile: Profile | str,
    results: Path = Path("results"),
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    force: bool = False,
    group: bool = True,
    agents: tuple[str, ...] | None = None,
    tasks: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
) -> list[RunSpec]:
    """Run a profile (or its name) end to end: datasets, runs not stored yet, the store; only
    `agents` (in that order) and `tasks` of it, and `seeds` instead of its own, where given.

    Returns the runs it planned.
    """
    if isinstance(profile, str):
        profile = profile_named(profile)
    profile = select(profile, agents, tasks, seeds)
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor must be local or ray, got '{executor}'")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    print(f"bench {profile.name}: {profile.note}", flush=True)
    with hold(results, "results folder"):
        checksums = task_checksums(profile)
        record_summaries(results, checksums.items())
        specs = plan(profile, checksums, results, force)
        planned = sum(len(spec.seeds) for spec in specs)
        stored = len(profile.agents) * len(checksums) * len(profile.seeds) - planned
        if stored:
            print(
                f"{stored} (agent, task, seed) run(s) of the profile are in "
                f"{results / 'runs.jsonl'} already and are skipped (--force trains them again); "
                f"{planned} to train",
                flush=True,
            )
        bar = tqdm(total=len(specs), desc=f"bench {profile.name}", unit="run", position=0)

        def on_done(labels: list[str]) -> None:
            bar.update(len(labels))
            bar.set_postfix_str("; ".join(labels), refresh=True)

        groups = group_runs(specs, group)
        try:
            if executor == "ray":
                run_ray(groups, results, address, force, on_done)
            else:
                run_local(groups, results, workers, force, on_done)
        finally:
            bar.close()
    return specs


@dataclasses.dataclass
class BenchArgs:
    """Run a bench profile: make the datasets it needs, train what the store lacks, store it."""

    profile: str = "default"
    """default (reduced steps: about 95 min on 2 cores, datasets included) | repro (100,000
    steps: about 37 h) | antmaze (umaze, 50,000 steps: about 40 min) | full (papers' protocol)
    | smoke (minutes)."""
    results: Path = Path("results")
    """Folder of the store (runs.jsonl) and of the run folders (runs/)."""
    workers: int = 1
    """Local worker processes (executor local)."""
    executor: str = "local"
    """local | ray (one Ray task per run; needs offrl[ray])."""
    address: str | None = None
    """Ray cluster address (e.g. auto); default: start a local Ray instance."""
    force: bool = False
    """Train runs the store already holds again, from scratch."""
    group: bool = True
    """Train the runs of one agent, config and seeds on one environment's datasets in one
    compiled program (each run's numbers as alone, up to float rounding); --no-group: each alone."""
    agents: tuple[str, ...] | None = None
    """Only these agents of the profile, trained in this order (default: all, cheapest first)."""
    tasks: tuple[str, ...] | None = None
    """Only these tasks of the profile (default: all of them)."""
    seeds: tuple[int, ...] | None = None
    """These seeds instead of the profile's (extra seeds: give them their own --results, or the
    board's n counts them too)."""


def main(argv: list[str]) -> int:
    """`offrl bench`; errors are OffrlErrors, reported by the CLI."""
    args = tyro.cli(BenchArgs, args=argv, prog="offrl bench")
    specs = bench(
        args.profile,
        args.results,
        workers=args.workers,
        executor=args.executor,
        address=args.address,
        force=args.force,
        group=args.group,
        agents=args.agents,
        tasks=args.tasks,
        seeds=args.seeds,
    )
    print(
        f"{len(specs)} run(s) trained; results in {args.results / 'runs.jsonl'} "
        f"(render them with `offrl leaderboard --store {args.results / 'runs.jsonl'}`)"
    )
    return 0
