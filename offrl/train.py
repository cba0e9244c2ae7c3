"""The one training loop: `eval_every` updates fused in a `lax.scan` (`offrl.fused`), vmapped
over seeds.

The host is visited only between chunks: to evaluate, append records, checkpoint and draw the
progress bar. A run folder that holds a checkpoint resumes from it and ends with the same numbers
as an uninterrupted run (same compiled program, same carried PRNG keys, same evaluation seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
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
from offrl.data.normalization import (
    ObsNormalizer,
    fit_normalizer,
    identity_normalizer,
    normalize_transitions,
    transform_rewards,
)
from offrl.data.transitions import Transitions, checksum, to_device
from offrl.envs import action_bound, make_vector_env
from offrl.errors import ConfigError, TrainingDiverged
from offrl.evaluate import run_episodes
from offrl.fused import Carry, act_fn, healthy, init_carry, make_train_chunk
from offrl.locks import hold
from offrl.loggers import log_tensorboard, tensorboard_writer_type
from offrl.results import truncate_records
from offrl.run_folder import check_resume, save_chunk, warn
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
    write_run_manifest(run_dir, manifest)
    return checkpointer, start, carry


def _diverged_message(
    agent: ModuleType,
    carry: Carry,
    data: Transitions,
    prepared: Any,
    config: Any,
    start: int,
    n: int,
    run_dir: Path | None,
) -> str:
    """Replay the failed chunk with per-step health checks to name the step and its losses."""
    chunk = make_train_chunk(agent, carry, n, config.batch_size, check_finite=True)
    _, (metrics, ok) = chunk(carry, data, prepared)
    ok = np.asarray(ok)
    step_index, seed_index = min(
        (int(np.argmin(ok[s])), s) for s in range(ok.shape[0]) if not ok[s].all()
    )
    losses = ", ".join(
        f"{name}={float(np.asarray(value)[seed_index, step_index]):.4g}"
        for name, value in sorted(metrics.items())
    )
    kept = (
        f"the last good checkpoint (step {start}) is kept in {run_dir}"
        if run_dir is not None and start > 0
        else "no checkpoint was written"
    )
    return (
        f"training diverged at step {start + step_index + 1} (seed index {seed_index}): a loss "
        "became infinite or the update made parameters non-finite; losses at that step (nan: "
        f"not updated at that step): {losses}. Stopped; {kept}. "
        "Lower the learning rates, check the reward transform, or inspect the dataset."
    )


def _chunk_records(
    metrics: dict,
    seeds: Sequence[int],
    step: int,
    updates_per_s: float,
    returns: np.ndarray | None,
    scores: np.ndarray | None,
    base: dict,
) -> list[dict]:
    records = []
    for i, seed in enumerate(seeds):
        with np.errstate(all="ignore"):
            losses = {
                k: float(np.nanmean(np.asarray(v)[i], dtype=np.float64))
                for k, v in sorted(metrics.items())
            }
        record = {**base, "seed": int(seed), "step": step, "losses": losses}
        record["updates_per_s"] = updates_per_s
        if returns is not None:
            record["return"] = float(returns[i].mean())
            record["return_std"] = float(returns[i].std())
            record["episode_returns"] = [float(r) for r in returns[i]]
            record["normalized_score"] = None if scores is None else float(scores[i])
        records.append(record)
    return records


def fit(
    agent: ModuleType,
    transitions: Transitions,
    config: Any = None,
    *,
    seeds: Sequence[int] = (0,),
    steps: int = 1_000_000,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    task: Any = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    tensorboard: bool = False,
) -> FitResult:
    """Train `agent` on raw `transitions`, one compiled program for all `seeds`.

    `config` defaults to the agent's official config for `task` (`offrl.agent.official_config`).
    `task` (an `offrl.data.registry.Task`) enables evaluation in its gymnasium env with the
    normalised score; `out_dir` enables records, checkpoints and resuming.
    """
    agent = checked_agent(agent)
    if config is None:
        config = official_config(agent, None if task is None else task.name)
    protocol = Protocol(steps, eval_every, eval_episodes)
    protocol.validate()
    seeds = checked_seeds(seeds)
    data_checksum = checksum(transitions)
    data, normalizer = prepare_data(transitions, config)
    max_action = 1.0 if task is None else action_bound(task.env_spec)
    spec = DatasetSpec(data.obs_dim, data.action_dim, max_action)
    manifest = describe_run(
        agent, config, seeds, protocol, task, data, data_checksum, spec, normalizer
    )
    run_dir = None if out_dir is None else Path(out_dir)
    writer_type = tensorboard_writer_type(run_dir) if tensorboard else None
    # A run folder that cannot be resumed is refused before anything is compiled or written.
    if run_dir is not None:
        check_resume(run_dir, manifest, on_fresh_start=lambda _: None)  # said under the hold
    with contextlib.ExitStack() as held:  # the run folder's hold and its checkpointer
        carry = init_carry(agent, spec, config, seeds)
        checkpointer, start = None, 0
        if run_dir is not None:
            checkpointer, start, carry = open_run_folder(held, run_dir, manifest, carry)
        writer = None if writer_type is None else writer_type(str(run_dir / "tensorboard"))
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
            envs = make_vector_env(task.env_spec, len(seeds) * protocol.eval_episodes)
        chunks: dict[int, Any] = {}
        records: list[dict] = []
        bar = tqdm(
            total=protocol.steps,
            initial=start,
            disable=not progress,
            unit="upd",
            desc=f"{manifest.agent} {manifest.task or ''}".strip(),
            dynamic_ncols=True,
        )
        try:
            while start < protocol.steps:
                n = min(protocol.eval_every, protocol.steps - start)
                if n not in chunks:
                    chunk = make_train_chunk(agent, carry, n, config.batch_size)
                    chunks[n] = chunk.lower(carry, data, prepared).compile()
                began = time.perf_counter()
                new_carry, metrics = chunks[n](carry, data, prepared)
                jax.block_until_ready(new_carry)
                updates_per_s = n / (time.perf_counter() - began)
                if not bool(healthy(new_carry.agent, metrics)):
                    raise TrainingDiverged(
                        _diverged_message(agent, carry, data, prepared, config, start, n, run_dir)
                    )
                carry, start = new_carry, start + n
                returns = scores = None
                if envs is not None:
                    returns = run_episodes(
                        lambda obs, states=carry.agent: policy(states, obs),
                        envs,
                        seeds,
                        protocol.eval_episodes,
                    )
                    scores = task.normalized_score(returns.mean(axis=1))
                new_records = _chunk_records(
                    metrics, seeds, start, updates_per_s, returns, scores, base
                )
                records.extend(new_records)
                if run_dir is not None:
                    save_chunk(run_dir, checkpointer, start, n, carry, new_records)
                if writer is not None:
                    log_tensorboard(writer, new_records)
                bar.update(n)
                bar.set_postfix(_postfix(updates_per_s, returns, scores), refresh=False)
        finally:
            bar.close()
            if envs is not None:
                envs.close()
            if writer is not None:
                writer.close()
        return FitResult(carry=carry, normalizer=normalizer, records=records, run_dir=run_dir)


def _postfix(updates_per_s: float, returns, scores) -> dict:
    postfix = {"upd/s": f"{updates_per_s:.0f}"}
    if scores is not None:
        postfix["score"] = f"{float(np.mean(scores)):.1f}"
    elif returns is not None:
        postfix["return"] = f"{float(returns.mean()):.1f}"
    return postfix
