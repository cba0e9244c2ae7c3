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
so far) and resumes from there; d3rlpy and torch are imported only here (`offrl[peers]`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
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
from benchmarks.configs import Profile, config_for, profile_named, select
from benchmarks.dataset_summaries import record_summaries
from benchmarks.datasets import ensure_datasets
from offrl import __version__
from offrl.data.normalization import fit_normalizer, transform_rewards
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions
from offrl.envs import make_vector_env
from offrl.errors import ConfigError, DatasetError
from offrl.evaluate import run_episodes
from offrl.locks import hold
from offrl.run_files import atomic_write, atomic_write_text
from offrl.run_manifest import git_commit
from offrl.train import Protocol

LIBRARY = "d3rlpy"
PEER_AGENTS = ("td3bc", "prdc")
ADAPTER_VERSION = 1
"""The `behavior_version` of peer records: bump it when what this adapter trains changes."""
PROGRESS = "progress.json"
VALUE_ROWS = 5000
"""Dataset rows whose Q-values each evaluation records (`q_mean`)."""


def episode_bounds(transitions: Transitions) -> list[tuple[int, int, bool]]:
    """(first row, one past the last row, terminated) of each episode in the transition table.

    An episode ends at a terminal row, or where the next row does not start from this row's
    next observation (a timeout, or the end of the table).
    """
    observations = np.asarray(transitions.observations)
    next_observations = np.asarray(transitions.next_observations)
    dones = np.asarray(transitions.dones) > 0.5
    continues = np.all(next_observations[:-1] == observations[1:], axis=1) & ~dones[:-1]
    ends = np.flatnonzero(~continues) + 1
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([ends, [len(dones)]])
    return [(int(a), int(b), bool(dones[b - 1])) for a, b in zip(starts, stops, strict=True)]


def import_d3rlpy() -> Any:
    """d3rlpy, quietly (its `gym` import prints a deprecation notice), or a ConfigError."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import d3rlpy
    except ImportError as err:
        raise ConfigError(f"offrl peer needs d3rlpy: pip install 'offrl[peers]' ({err})") from err
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return d3rlpy


def replay_buffer(transitions: Transitions) -> Any:
    """d3rlpy's replay buffer holding every row once, as the transition d3rlpy samples.

    A terminated episode's rows are d3rlpy transitions as they are; an episode that ends without
    termination gets its last next observation appended (with a zero action and reward that are
    never sampled), so that d3rlpy's transition count equals the row count.
    """
    d3rlpy = import_d3rlpy()
    observations = np.asarray(transitions.observations, dtype=np.float32)
    actions = np.asarray(transitions.actions, dtype=np.float32)
    rewards = np.asarray(transitions.rewards, dtype=np.float32).reshape(-1, 1)
    next_observations = np.asarray(transitions.next_observations, dtype=np.float32)
    episodes = []
    for start, stop, terminated in episode_bounds(transitions):
        obs, act, rew = observations[start:stop], actions[start:stop], rewards[start:stop]
        if not terminated:
            obs = np.concatenate([obs, next_observations[stop - 1 : stop]])
            act = np.concatenate([act, np.zeros_like(act[:1])])
            rew = np.concatenate([rew, np.zeros_like(rew[:1])])
        episodes.append(d3rlpy.dataset.Episode(obs, act, rew, terminated))
    buffer = d3rlpy.dataset.ReplayBuffer(d3rlpy.dataset.InfiniteBuffer(), episodes=episodes)
    if buffer.transition_count != len(rewards):
        raise DatasetError(
            f"d3rlpy's buffer holds {buffer.transition_count} transitions, the dataset "
            f"{len(rewards)} rows: the episode split is wrong"
        )
    return buffer


def peer_config(agent: str, task: str) -> tuple[Any, dict[str, Any]]:
    """offrl's official config for (agent, task) and the d3rlpy config fields it sets."""
    if agent not in PEER_AGENTS:
        raise ConfigError(f"d3rlpy peers: {', '.join(PEER_AGENTS)}; got {agent!r}")
    ours = config_for(agent, task)
    if tuple(ours.hidden_dims) != (256, 256):
        raise ConfigError(
            f"d3rlpy's default encoder is 256-256, the config asks {ours.hidden_dims}"
        )
    fields = {
        "batch_size": ours.batch_size,
        "gamma": ours.discount,
        "tau": ours.tau,
        "actor_learning_rate": ours.actor_lr,
        "critic_learning_rate": ours.critic_lr,
        "target_smoothing_sigma": ours.policy_noise,
        "target_smoothing_clip": ours.noise_clip,
        "update_actor_interval": ours.policy_freq,
        "alpha": ours.alpha,
    }
    if agent == "prdc":
        fields["beta"] = ours.beta
    return ours, fields


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


def learner(agent: str, task: str, transitions: Transitions) -> tuple[Any, Transitions]:
    """d3rlpy's learner for (agent, task) with offrl's official config and state normalisation,
    and the transitions it trains on (offrl's reward transform applied); not yet built."""
    d3rlpy = import_d3rlpy()
    ours, fields = peer_config(agent, task)
    transitions = transform_rewards(transitions, ours.reward_scale, ours.reward_shift)
    normalizer = fit_normalizer(np.asarray(transitions.observations))
    # offrl's std already carries TD3+BC's +1e-3, so d3rlpy adds nothing more.
    scaler = d3rlpy.preprocessing.StandardObservationScaler(
        mean=normalizer.mean, std=normalizer.std, eps=0.0
    )
    configs = {"td3bc": d3rlpy.algos.TD3PlusBCConfig, "prdc": d3rlpy.algos.PRDCConfig}
    return configs[agent](observation_scaler=scaler, **fields).create(device=False), transitions


def value_rows(transitions: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """(states, actions) of VALUE_ROWS fixed rows, drawn by their own generator so that d3rlpy's
    sampling (numpy's global RNG) is untouched."""
    count = len(transitions.rewards)
    rows = np.sort(np.random.default_rng(0).choice(count, min(VALUE_ROWS, count), replace=False))
    states = np.asarray(transitions.observations, np.float32)[rows]
    return states, np.asarray(transitions.actions, np.float32)[rows]


def data_q_mean(algo: Any, rows: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean over `rows` and both critics of Q(s, a) at the data's actions: what offrl's
    `q_mean` averages over its training batches, so a diverging critic shows in both alike."""
    return float(algo.predict_value(*rows).mean())


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
        wall_s=float(wall_s),
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
    threads: int = 1
    """torch and scikit-learn CPU threads (1: small networks gain nothing from more; beside a busy
    bench, 2 made each update 12x slower)."""
    force: bool = False
    """Train runs the store already holds again, from scratch."""


def main(argv: list[str]) -> int:
    """`offrl peer`; errors are OffrlErrors, reported by the CLI."""
    args = tyro.cli(PeerArgs, args=argv, prog="offrl peer")
    profile = select(profile_named(args.profile), None, args.tasks)
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
