"""The one training loop: `eval_every` updates fused in a `lax.scan`, vmapped over seeds.

The host is visited only between chunks: to evaluate, append records, checkpoint and draw the
progress bar. A run folder that holds a checkpoint resumes from it and ends with the same numbers
as an uninterrupted run (same compiled program, same carried PRNG keys, same evaluation seeds).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from offrl import __version__
from offrl.agent import Context, DatasetSpec, behavior_version
from offrl.checkpoint import Checkpointer
from offrl.data.normalization import (
    ObsNormalizer,
    fit_normalizer,
    identity_normalizer,
    normalize_transitions,
    transform_rewards,
)
from offrl.data.transitions import Transitions, checksum, sample_rows, take, to_device
from offrl.envs import action_bound, make_vector_env
from offrl.errors import ConfigError, TrainingDiverged
from offrl.evaluate import run_episodes
from offrl.locks import hold
from offrl.results import truncate_records, write_manifest
from offrl.run_folder import check_resume, save_chunk, warn


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


@flax.struct.dataclass
class Carry:
    """What the scan carries per seed: the agent's state and its own PRNG key."""

    agent: Any
    key: jax.Array


@dataclasses.dataclass
class FitResult:
    carry: Carry
    """Final states, leading axis = seed."""
    normalizer: ObsNormalizer
    records: list[dict]
    run_dir: Path | None


def agent_name(agent: ModuleType) -> str:
    return agent.__name__.rsplit(".", 1)[-1]


def prepare_data(transitions: Transitions, config: Any) -> tuple[Transitions, ObsNormalizer]:
    """Reward transform and state normalisation on the host, then one copy to the device."""
    transitions = transform_rewards(transitions, config.reward_scale, config.reward_shift)
    if config.normalize_states:
        normalizer = fit_normalizer(np.asarray(transitions.observations))
    else:
        normalizer = identity_normalizer(transitions.obs_dim)
    return to_device(normalize_transitions(transitions, normalizer)), normalizer


def init_carry(agent: ModuleType, spec: DatasetSpec, config: Any, seeds: Sequence[int]) -> Carry:
    """Independent initial states for every seed: PRNGKey(seed) -> (init key, training key).

    Every leaf gets a leading seed axis except the agent's step counter, which all seeds share
    (see `seed_axes`).
    """

    def one_seed(seed):
        init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
        return Carry(agent=agent.init(init_key, spec, config), key=train_key)

    # Jitted: op-by-op initialisation of every layer costs seconds of dispatch on CPU.
    carry = jax.jit(jax.vmap(one_seed))(jnp.asarray(seeds, dtype=jnp.uint32))
    if hasattr(carry.agent, "step"):
        return carry.replace(agent=carry.agent.replace(step=carry.agent.step[0]))
    return carry


def seed_axes(carry: Carry) -> Carry:
    """vmap axes of a carry: every leaf has a seed axis except the agent's shared step counter.

    Keeping `step` unbatched keeps the delayed actor update a real `lax.cond` under vmap
    (a batched predicate would turn it into a select that runs both branches every step).
    """
    axes = jax.tree.map(lambda _: 0, carry)
    if hasattr(carry.agent, "step"):
        axes = axes.replace(agent=axes.agent.replace(step=None))
    return axes


def all_finite(tree: Any) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in leaves]))


@jax.jit  # one compiled check instead of a dispatch per parameter array
def healthy(state: Any, metrics: dict) -> jax.Array:
    """Finite parameters and no infinite loss (NaN metrics mean "not updated at this step")."""
    no_inf = jnp.all(jnp.stack([~jnp.isinf(m).any() for m in jax.tree.leaves(metrics)]))
    return all_finite(state) & no_inf


# Eigen's dots ran batch-256 updates x0.97-1.19 as fast as XLA's default (YNNPACK) on two VMs.
EIGEN_DOTS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def update_compiler_options() -> dict[str, str] | None:
    """XLA options for compiled updates: Eigen dots on CPU when this XLA has YNNPACK, else none."""
    if jax.default_backend() != "cpu":
        return None
    probe = jax.jit(lambda x: x @ x, compiler_options=EIGEN_DOTS)
    try:
        probe.lower(jnp.ones((2, 2), jnp.float32)).compile()
    except jax.errors.JaxRuntimeError:  # an XLA from before YNNPACK has no such option
        return None
    return EIGEN_DOTS


def make_train_chunk(
    agent: ModuleType,
    carry: Carry,
    num_updates: int,
    batch_size: int,
    check_finite: bool = False,
    xla_default_dots: bool = False,
):
    """Jitted (carry, data, prepared) -> (carry, per-step metrics of shape (seeds, num_updates)).

    `prepared` is the agent's `prepare` result, shared by all seeds; each update gets it with
    the batch's dataset rows as its `Context`. With `check_finite`, each step also reports
    whether it stayed `healthy`: used only to locate a divergence after the fact, so the hot
    path pays nothing.
    `xla_default_dots` compiles without `update_compiler_options()`, for the speed benchmark.
    """
    axes = seed_axes(carry)

    def run_one_seed(carry: Carry, data: Transitions, prepared: Any):
        def body(carry: Carry, _):
            key, batch_key, update_key = jax.random.split(carry.key, 3)
            rows = sample_rows(data, batch_key, batch_size)
            batch = take(data, rows)
            context = Context(rows=rows, prepared=prepared)
            state, metrics = agent.update(carry.agent, batch, update_key, context)
            out = (metrics, healthy(state, metrics)) if check_finite else metrics
            return Carry(agent=state, key=key), out

        return jax.lax.scan(body, carry, length=num_updates)

    return jax.jit(
        jax.vmap(run_one_seed, in_axes=(axes, None, None), out_axes=(axes, 0)),
        compiler_options=None if xla_default_dots else update_compiler_options(),
    )


def act_fn(agent: ModuleType, carry: Carry, normalizer: ObsNormalizer):
    """Batched deterministic policies: observations (seeds, n, obs_dim) -> actions."""
    axes = seed_axes(carry).agent
    act = jax.jit(jax.vmap(lambda s, o: agent.act(s, normalizer(o)), in_axes=(axes, 0)))
    return lambda states, observations: np.asarray(act(states, jnp.asarray(observations)))


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


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
    config: Any,
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

    `task` (an `offrl.data.registry.Task`) enables evaluation in its gymnasium env with the
    normalised score; `out_dir` enables records, checkpoints and resuming.
    """
    protocol = Protocol(steps, eval_every, eval_episodes)
    protocol.validate()
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct and at least one, got {seeds}")
    if not all(0 <= seed < 2**32 for seed in seeds):
        raise ConfigError(f"seeds must be in [0, 2^32) (PRNG keys are uint32), got {seeds}")
    data_checksum = checksum(transitions)
    data, normalizer = prepare_data(transitions, config)
    max_action = 1.0
    if task is not None:
        max_action = action_bound(task.env_spec)
    spec = DatasetSpec(data.obs_dim, data.action_dim, max_action)

    name = agent_name(agent)
    manifest = {
        "agent": name,
        "behavior_version": behavior_version(agent),
        "task": None if task is None else task.name,
        "config": dataclasses.asdict(config),
        "seeds": seeds,
        "eval_every": protocol.eval_every,
        "eval_episodes": protocol.eval_episodes,
        "steps": protocol.steps,
        "checksum": data_checksum,
        "dataset_size": data.size,
        "spec": dataclasses.asdict(spec),
        "normalizer": {"mean": normalizer.mean.tolist(), "std": normalizer.std.tolist()},
        "offrl_version": __version__,
        "git_commit": git_commit(),
    }
    # Through JSON once, so tuples compare equal to the lists a stored manifest gives back.
    manifest = json.loads(json.dumps(manifest))
    run_dir = None if out_dir is None else Path(out_dir)
    writer_type = _tensorboard_writer_type(run_dir) if tensorboard else None
    checkpointer = None
    start = 0
    # A run folder that cannot be resumed is refused before anything is compiled or written.
    if run_dir is not None:
        check_resume(run_dir, manifest, on_fresh_start=lambda _: None)  # said under the hold
    with contextlib.ExitStack() as held:  # the run folder's hold and its checkpointer
        carry = init_carry(agent, spec, config, seeds)
        if run_dir is not None:
            held.enter_context(hold(run_dir, "run folder"))
            # Again, now that no other writer can change the folder.
            stored = check_resume(run_dir, manifest)
            checkpointer = held.enter_context(contextlib.closing(Checkpointer(run_dir)))
            if stored is not None:
                restored = checkpointer.restore_latest_intact(carry, warn)
                if restored is not None:
                    start, carry, _ = restored
            # Records past the resumed checkpoint (all of them when there is none) describe no
            # saved state: a kill between a chunk's records and its checkpoint leaves such records.
            truncate_records(run_dir, start)
            write_manifest(run_dir, manifest)

        writer = None if writer_type is None else writer_type(str(run_dir / "tensorboard"))
        protocol_record = {
            "eval_episodes": protocol.eval_episodes,
            "eval_every": protocol.eval_every,
            "total_steps": protocol.steps,
            "batch_size": config.batch_size,
        }
        base = {
            "agent": name,
            "behavior_version": manifest["behavior_version"],
            "task": manifest["task"],
            "protocol": protocol_record,
        }
        policy = act_fn(agent, carry, normalizer)
        prepared = agent.prepare(data, config)
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
            desc=f"{name} {manifest['task'] or ''}".strip(),
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
                    _log_tensorboard(writer, new_records)
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


def _tensorboard_writer_type(run_dir: Path | None) -> type:
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


def _log_tensorboard(writer, records: list[dict]) -> None:
    for record in records:
        prefix = f"seed{record['seed']}"
        for name, value in record["losses"].items():
            writer.add_scalar(f"{prefix}/{name}", value, record["step"])
        for name in ("return", "normalized_score", "updates_per_s"):
            if record.get(name) is not None:
                writer.add_scalar(f"{prefix}/{name}", record[name], record["step"])
