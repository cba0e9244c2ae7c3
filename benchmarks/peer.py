"""`offrl peer`: d3rlpy's TD3PlusBC and PRDC trained on offrl's data under a bench profile's
protocol, stored beside offrl's runs and marked as a peer.

The papers' scores are on D4RL files that cannot be had here; the honest check of an agent is
another trusted implementation on exactly the same data. Everything around the learner is
offrl's: the same transitions (every row, each exactly once in d3rlpy's replay buffer), the same
state normalisation (offrl's mean and std given to d3rlpy's scaler), the same reward transform,
the same official hyper-parameters (read from the bench's per-task configs), the same evaluation
envs, episode seeds and final-score rule. The learner, its sampling and its networks are
d3rlpy's, called through its public API (`fit` one evaluation interval at a time, `predict`).

A run checkpoints after every evaluation (model and optimisers, the RNG states, the evaluations
so far) and resumes from there; d3rlpy and torch are imported only here and in
`benchmarks.peer_learner` (`offrl[peers]`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tyro
from tqdm.auto import tqdm

from benchmarks import store
from benchmarks.configs import Profile, profile_named, select
from benchmarks.dataset_summaries import record_summaries
from benchmarks.datasets import ensure_datasets
from benchmarks.peer_learner import (
    PEER_AGENTS,
    data_q_mean,
    import_d3rlpy,
    learner,
    peer_config,
    replay_buffer,
    value_rows,
)
from offrl import __version__
from offrl.chunk import RunClock
from offrl.data.registry import load_task
from offrl.envs import make_vector_env
from offrl.errors import ConfigError, DatasetError
from offrl.evaluate import run_episodes
from offrl.locks import hold
from offrl.run_files import atomic_write, atomic_write_text
from offrl.run_manifest import git_commit
from offrl.train import Protocol

LIBRARY = "d3rlpy"
ADAPTER_VERSION = 1
"""The `behavior_version` of peer records: bump it when what this adapter trains changes."""
PROGRESS = "progress.json"


@dataclasses.dataclass(frozen=True)
class PeerSpec:
    """One peer run: a d3rlpy learner on a task for one seed, under one protocol."""

    agent: str
    task: str
    seed: int
    protocol: Protocol
    dataset_checksum: str

    @property
    def label(self) -> str:
        return f"{LIBRARY} {self.agent} {self.task} seed {self.seed}"

    def config(self) -> dict[str, Any]:
        """What the run's record states as its config: d3rlpy's fields and the versions."""
        d3rlpy = import_d3rlpy()
        import torch

        ours, fields = peer_config(self.agent, self.task)
        return {
            **fields,
            "normalize_states": ours.normalize_states,
            "reward_scale": ours.reward_scale,
            "reward_shift": ours.reward_shift,
            "library": f"{LIBRARY}=={d3rlpy.__version__}",
            "torch": torch.__version__,
        }

    def run_dir(self, results: Path) -> Path:
        parts = (
            f"{store.protocol_hash(self.protocol)[:8]}-{store.config_hash(self.config())[:8]}"
            f"-d{self.dataset_checksum[:8]}-b{ADAPTER_VERSION}-s{self.seed}"
        )
        return results / "peers" / LIBRARY / self.agent / self.task / parts


def plan(
    profile: Profile,
    checksums: dict[str, str],
    results: Path,
    agents: Sequence[str],
    force: bool = False,
) -> list[PeerSpec]:
    """Every (agent, task, seed) of the profile the store lacks, agent by agent."""
    done = store.finished_keys(results / "runs.jsonl")
    protocol = Protocol(profile.steps, profile.eval_every, profile.eval_episodes)
    specs = []
    for agent in agents:
        for task, checksum in checksums.items():
            for seed in profile.seeds:
                spec = PeerSpec(agent, task, seed, protocol, checksum)
                key = store.RunKey(
                    agent,
                    ADAPTER_VERSION,
                    task,
                    seed,
                    store.config_hash(spec.config()),
                    store.protocol_hash(protocol),
                    checksum,
                    LIBRARY,
                )
                if force or key not in done:
                    specs.append(spec)
    return specs


def _save_state(run_dir: Path, algo: Any, step: int) -> None:
    """The model (with its optimisers) and every RNG the learner draws from, at `step`."""
    import torch

    atomic_write(run_dir / f"model-{step}.d3", algo.save_model)
    rng = {"numpy": np.random.get_state(), "random": random.getstate()}
    rng["torch"] = torch.get_rng_state()
    atomic_write(run_dir / f"rng-{step}.pkl", lambda tmp: Path(tmp).write_bytes(pickle.dumps(rng)))


def _restore_state(run_dir: Path, algo: Any, step: int) -> None:
    import torch

    algo.load_model(str(run_dir / f"model-{step}.d3"))
    rng = pickle.loads((run_dir / f"rng-{step}.pkl").read_bytes())
    np.random.set_state(rng["numpy"])
    random.setstate(rng["random"])
    torch.set_rng_state(rng["torch"])
    algo.set_grad_step(step)


def resume_point(run_dir: Path) -> tuple[int, list[dict[str, Any]]]:
    """The last checkpointed step and the evaluations up to it (0 and none for a new run)."""
    progress = run_dir / PROGRESS
    if not progress.exists():
        return 0, []
    state = json.loads(progress.read_text())
    return int(state["step"]), list(state["evaluations"])


def _evaluate(algo: Any, envs: Any, seed: int, episodes: int) -> np.ndarray:
    """One episode per env with d3rlpy's deterministic policy; returns shape (episodes,)."""

    def policy(observations: np.ndarray) -> np.ndarray:
        flat = observations.reshape(-1, observations.shape[-1]).astype(np.float32)
        return algo.predict(flat).reshape(*observations.shape[:-1], -1)

    return run_episodes(policy, envs, [seed], episodes)[0]


def train_peer(spec: PeerSpec, results: Path, progress: bool = True) -> store.RunRecord:
    """Train (or resume) one peer run and return its store record."""
    d3rlpy = import_d3rlpy()
    loaded = load_task(spec.task)
    if loaded.checksum != spec.dataset_checksum:
        raise DatasetError(
            f"{spec.task} changed since the peer bench planned (checksum "
            f"{loaded.checksum[:16]}..., planned {spec.dataset_checksum[:16]}...); run it again."
        )
    config = spec.config()
    algo, transitions = learner(spec.agent, spec.task, loaded.transitions)
    buffer = replay_buffer(transitions)
    values_at = value_rows(transitions)
    run_dir = spec.run_dir(results)
    protocol = spec.protocol
    began = time.perf_counter()
    with hold(run_dir, "peer run folder"):
        manifest = {"spec": dataclasses.asdict(spec), "config": config, "task": spec.task}
        manifest_path = run_dir / "run.json"
        if manifest_path.exists() and json.loads(manifest_path.read_text()) != json.loads(
            json.dumps(manifest)
        ):
            raise ConfigError(f"{run_dir} holds another peer run; move it away to start afresh")
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
        d3rlpy.seed(spec.seed)
        algo.build_with_dataset(buffer)
        step, evaluations = resume_point(run_dir)
        if step:
            _restore_state(run_dir, algo, step)
        clock = RunClock(evaluations[-1].get("wall_s") if evaluations else 0.0, began)
        envs = make_vector_env(loaded.task.env_spec, protocol.eval_episodes)
        bar = tqdm(
            total=protocol.steps, initial=step, disable=not progress, desc=spec.label, unit="upd"
        )
        try:
            while step < protocol.steps:
                n = min(protocol.eval_every, protocol.steps - step)
                chunk_began = time.perf_counter()
                ((_, losses),) = algo.fit(
                    buffer,
                    n_steps=n,
                    n_steps_per_epoch=n,
                    experiment_name=spec.label,
                    with_timestamp=False,
                    logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
                    show_progress=False,
                    save_interval=n + 1,
                )
                updates_per_s = n / (time.perf_counter() - chunk_began)
                returns = _evaluate(algo, envs, spec.seed, protocol.eval_episodes)
                step += n
                score = loaded.task.normalized_score(returns.mean())
                evaluations.append(
                    {
                        "step": step,
                        "return": float(returns.mean()),
                        "normalized_score": None if score is None else float(score),
                        "updates_per_s": updates_per_s,
                        "losses": {name: float(value) for name, value in losses.items()},
                        "q_mean": data_q_mean(algo, values_at),
                    }
                )
                if clock.carried is not None:
                    evaluations[-1]["wall_s"] = clock.seconds()
                _save_state(run_dir, algo, step)
                state = {"step": step, "evaluations": evaluations}
                atomic_write_text(run_dir / PROGRESS, json.dumps(state, indent=1))
                for old in (*run_dir.glob("model-*.d3"), *run_dir.glob("rng-*.pkl")):
                    if old.stem.rpartition("-")[2] != str(step):
                        old.unlink()
                bar.update(n)
                shown = returns.mean() if score is None else score
                bar.set_postfix_str(f"{updates_per_s:.0f} upd/s, score {float(shown):.1f}")
        finally:
            bar.close()
            envs.close()
    return _record(spec, config, evaluations, run_dir, time.perf_counter() - began)


def _record(
    spec: PeerSpec,
    config: dict[str, Any],
    evaluations: list[dict[str, Any]],
    run_dir: Path,
    wall_s: float,
) -> store.RunRecord:
    scored = all(e["normalized_score"] is not None for e in evaluations)
    kind = "normalized_score" if scored else "return"
    steps = [e["step"] for e in evaluations]
    scores = [float(e[kind]) for e in evaluations]
    rates = np.array([e["updates_per_s"] for e in evaluations])
    chunks = np.diff([0, *steps])
    protocol = store.protocol_of(spec.protocol)
    return store.RunRecord(
        agent=spec.agent,
        behavior_version=ADAPTER_VERSION,
        task=spec.task,
        seed=spec.seed,
        dataset_checksum=spec.dataset_checksum,
        config=config,
        config_hash=store.config_hash(config),
        protocol=protocol,
        protocol_hash=store.protocol_hash(protocol),
        git_commit=git_commit(),
        offrl_version=__version__,
        score_kind=kind,
        curve_steps=steps,
        curve_scores=scores,
        curve_returns=[float(e["return"]) for e in evaluations],
        **store.score_summary(steps, scores),
        wall_s=float(evaluations[-1].get("wall_s", wall_s)),
        wall_whole_run="wall_s" in evaluations[-1],
        updates_per_s=float(steps[-1] / np.sum(chunks / rates)),
        run_seeds=[spec.seed],
        run_dir=str(run_dir),
        finished_at=store._now(),
        implementation=LIBRARY,
    )


@dataclasses.dataclass
class PeerArgs:
    """Train d3rlpy's TD3PlusBC / PRDC on a profile's datasets, stored beside offrl's runs."""

    profile: str = "repro"
    """The bench profile whose tasks, seeds and protocol the peer follows."""
    results: Path = Path("results")
    """Folder of the store (runs.jsonl); peer run folders go to RESULTS/peers/."""
    agents: tuple[str, ...] = PEER_AGENTS
    """Peer agents, in order: td3bc (d3rlpy TD3PlusBC) and prdc (d3rlpy PRDC)."""
    tasks: tuple[str, ...] | None = None
    """Only these tasks of the profile (default: all of them)."""
    seeds: tuple[int, ...] | None = None
    """These seeds instead of the profile's (extra seeds: give them their own --results, or the
    board's n counts them too)."""
    threads: int = 1
    """torch and scikit-learn CPU threads (1: small networks gain nothing from more; beside a busy
    bench, 2 made each update 12x slower)."""
    force: bool = False
    """Train runs the store already holds again, from scratch."""


def main(argv: list[str]) -> int:
    """`offrl peer`; errors are OffrlErrors, reported by the CLI."""
    args = tyro.cli(PeerArgs, args=argv, prog="offrl peer")
    profile = select(profile_named(args.profile), None, args.tasks, args.seeds)
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    # d3rlpy's PRDC searches with scikit-learn's n_jobs=-1: joblib reads its core count here.
    os.environ["LOKY_MAX_CPU_COUNT"] = str(args.threads)
    import_d3rlpy()
    import torch

    torch.set_num_threads(args.threads)
    tasks = profile.tasks or ()
    # No hold on the results folder: a bench may be training into it; each peer run holds its
    # own folder, and store appends are flock-safe.
    checksums = ensure_datasets(tasks)
    record_summaries(args.results, checksums.items())
    specs = plan(profile, checksums, args.results, args.agents, args.force)
    print(f"peer {LIBRARY} on profile {profile.name}: {len(specs)} run(s) to train", flush=True)
    for spec in specs:
        if args.force:
            for path in spec.run_dir(args.results).glob("*"):
                if path.name != ".lock":
                    path.unlink()
        store.append(args.results / "runs.jsonl", [train_peer(spec, args.results)])
    print(f"results in {args.results / 'runs.jsonl'}", flush=True)
    return 0
