"""One evaluation chunk of the training loop on the host side: the compiled scans of
`log_every` updates it runs as, the losses read after each, its per-seed records, and what the
progress bar shows (used by `fit` and `fit_many`)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import numpy as np

from offrl.checkpoint import Checkpointer
from offrl.data.transitions import Transitions
from offrl.fused import Carry, healthy, make_train_chunk
from offrl.run_files import read_records
from offrl.run_folder import save_chunk


def scan_lengths(n: int, log_every: int) -> list[int]:
    """The updates of each compiled scan of an `n`-update chunk: `log_every` each, the last one
    shorter where `log_every` does not divide `n`."""
    full, rest = divmod(n, log_every)
    return [log_every] * full + ([rest] if rest else [])


@dataclasses.dataclass(frozen=True)
class Scanned:
    """One scan of a chunk, done."""

    length: int
    carry: Carry
    """The carry it left (the next scan's start)."""
    metrics: dict[str, np.ndarray]
    """Per-step metrics on the host, of shape (seeds, length)."""
    healthy: bool


@dataclasses.dataclass(frozen=True)
class TrainedChunk:
    """A chunk trained, its evaluation under way: what its records and checkpoint need."""

    step: int
    """The step it ended at."""
    length: int
    carry: Carry
    metrics: dict[str, np.ndarray]
    """Per-step metrics on the host, of shape (seeds, length)."""
    loss_records: list[dict]
    updates_per_s: float
    evaluation: concurrent.futures.Future
    """(returns, normalised scores), (None, None) without an environment."""


@dataclasses.dataclass(frozen=True)
class RunClock:
    """A run's wall time over the invocations that trained it: the seconds `carried` by its
    records at the step it resumed from, plus this invocation's since `began`
    (`time.perf_counter()`). `carried` is None when those records predate the field: the run's
    earlier time is unknown, so its records carry none."""

    carried: float | None
    began: float

    def seconds(self) -> float | None:
        return None if self.carried is None else self.carried + time.perf_counter() - self.began


def resumed_clock(run_dir: Path | None, start: int, began: float) -> RunClock:
    """The clock of a run resumed at `start` (0: a new run) in an invocation begun at `began`;
    the work of an invocation killed after its last checkpoint is redone, so it is not counted."""
    if start == 0 or run_dir is None:
        return RunClock(0.0, began)
    walls = [r.get("wall_s") for r in read_records(run_dir) if r["step"] == start]
    carried = None if not walls or None in walls else max(walls)
    return RunClock(carried, began)


def finish_chunk(
    chunk: TrainedChunk,
    seeds: Sequence[int],
    base: dict,
    run_dir: Path | None,
    checkpointer: Checkpointer | None,
    clock: RunClock,
) -> tuple[list[dict], str]:
    """Once a trained chunk's evaluation is done: its per-seed records, written with its
    checkpoint when there is a run folder, and the evaluation's text for the bar."""
    returns, scores = chunk.evaluation.result()
    records = chunk_records(
        chunk.metrics,
        seeds,
        chunk.step,
        chunk.updates_per_s,
        clock.seconds(),
        returns,
        scores,
        base,
    )
    if run_dir is not None:
        save_chunk(
            run_dir,
            checkpointer,
            chunk.step,
            chunk.length,
            chunk.carry,
            records,
            chunk.loss_records,
        )
    return records, evaluation_text(returns, scores)


def run_scans(
    scans: Mapping[int, Any],
    lengths: Sequence[int],
    carry: Carry,
    data: Transitions,
    prepared: Any,
) -> Iterator[Scanned]:
    """Run a chunk scan by scan (`scans[length]` compiled for each of `lengths`), each from the
    carry the one before left, the last one's health checked before the next starts."""
    for length in lengths:
        carry, metrics = scans[length](carry, data, prepared)
        ok = bool(healthy(carry.agent, metrics))
        yield Scanned(length, carry, jax.device_get(metrics), ok)


def window_losses(metrics: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Each seed's mean of every metric over one scan's updates (metrics of shape (seeds,
    updates)); a metric that no update of the scan computed (all NaN: the delayed actor's, in a
    scan shorter than its period) is left out."""
    seeds = next(iter(metrics.values())).shape[0]
    return [
        {
            name: float(np.nanmean(values[i], dtype=np.float64))
            for name, values in sorted(metrics.items())
            if not np.isnan(values[i]).all()
        }
        for i in range(seeds)
    ]


# The losses on the progress bar (every agent has both; the records hold all of them).
BAR_LOSSES = ("critic_loss", "actor_loss")


def bar_postfix(losses: Sequence[dict[str, float]], evaluation: str) -> str:
    """'loss critic=0.512 actor=-2.41 score=45.1': the seeds' mean losses over the last scan,
    then the latest evaluation ('' before the first)."""
    shown = [
        f"{name.removesuffix('_loss')}={np.mean([seed[name] for seed in losses]):.3g}"
        for name in BAR_LOSSES
        if all(name in seed for seed in losses)
    ]
    return " ".join(["loss", *shown, *([evaluation] if evaluation else [])])


def evaluation_text(returns: np.ndarray | None, scores: np.ndarray | None) -> str:
    """The seeds' mean normalised score of an evaluation, else their mean return."""
    if scores is not None:
        return f"score={float(np.mean(scores)):.1f}"
    return "" if returns is None else f"return={float(returns.mean()):.1f}"


def chunk_records(
    metrics: dict,
    seeds: Sequence[int],
    step: int,
    updates_per_s: float,
    wall_s: float | None,
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
        if wall_s is not None:
            record["wall_s"] = wall_s
        if returns is not None:
            record["return"] = float(returns[i].mean())
            record["return_std"] = float(returns[i].std())
            record["episode_returns"] = [float(r) for r in returns[i]]
            record["normalized_score"] = None if scores is None else float(scores[i])
        records.append(record)
    return records


def diverged_message(
    agent: ModuleType,
    carry: Carry,
    data: Transitions,
    prepared: Any,
    config: Any,
    start: int,
    n: int,
) -> str:
    """Replay the failed scan of `n` updates from step `start` with per-step health checks, to
    name the step and its losses."""
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
    return (
        f"training diverged at step {start + step_index + 1} (seed index {seed_index}): a loss "
        "became infinite or the update made parameters non-finite; losses at that step (nan: "
        f"not updated at that step): {losses}."
    )


def what_is_kept(checkpoint_step: int, run_dir: Path | None) -> str:
    kept = (
        f"the last good checkpoint (step {checkpoint_step}) is kept in {run_dir}"
        if run_dir is not None and checkpoint_step > 0
        else "no checkpoint was written"
    )
    return (
        f" Stopped; {kept}. Lower the learning rates, check the reward transform, or inspect "
        "the dataset."
    )
