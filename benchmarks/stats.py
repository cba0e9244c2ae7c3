"""Aggregate metrics and stratified-bootstrap confidence intervals, as rliable defines them.

The scores of one agent on one group of tasks are a sequence with one array of run scores per
task (runs on the last axis). Tasks may hold different numbers of runs: rliable wants a
runs x tasks matrix, but a missing seed should not drop a whole task. With equal run counts every
metric here equals rliable's (`rliable.metrics`, `rliable.library`):

- mean: mean over tasks of the per-task mean (`aggregate_mean`);
- IQM: 25 % trimmed mean of all runs of all tasks pooled (`aggregate_iqm`);
- optimality gap: gamma - mean(min(score, gamma)) over all runs pooled (`aggregate_optimality_gap`);
- performance profile: fraction of all runs scoring above tau (`score_distributions`);
- probability of improvement: P(X > Y) + P(X = Y) / 2 per task (the Mann-Whitney U statistic
  over nx * ny), averaged over tasks (`probability_of_improvement`);
- confidence intervals: percentile intervals of a stratified bootstrap, which resamples runs with
  replacement within each task, independently per task and per score set (`StratifiedBootstrap`,
  `StratifiedIndependentBootstrap`).

Each metric accepts arrays with leading batch axes, so the point estimate and all bootstrap
replicates go through the same code. Pure numpy: scipy is only a test dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

TaskScores = Sequence[np.ndarray]
"""One array of run scores per task, shape (..., runs)."""

GAMMA = 100.0  # optimality-gap threshold on D4RL-normalised scores: the expert's level
REPS = 50_000  # rliable's default number of bootstrap repetitions for interval estimates
PROFILE_REPS = 2_000  # rliable's default for performance-profile bands
CI_SIZE = 0.95


def _as_tasks(tasks: TaskScores) -> list[np.ndarray]:
    """Float arrays, refusing what no metric can summarise: no tasks, or a task without runs."""
    arrays = [np.asarray(t, dtype=np.float64) for t in tasks]
    if not arrays:
        raise ValueError("no tasks to aggregate")
    if any(a.ndim == 0 or a.shape[-1] == 0 for a in arrays):
        raise ValueError("every task needs at least one run score")
    return arrays


def _pooled(tasks: TaskScores) -> np.ndarray:
    """All runs of all tasks along the last axis."""
    return np.concatenate(_as_tasks(tasks), axis=-1)


def trim_mean(x: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """scipy.stats.trim_mean over the last axis: drop int(proportion * n) scores at each end."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    cut = int(proportion * n)
    return np.sort(x, axis=-1)[..., cut : n - cut].mean(axis=-1)


def aggregate_mean(tasks: TaskScores) -> np.ndarray:
    """Mean over tasks of each task's mean run score."""
    return np.mean(np.stack([t.mean(axis=-1) for t in _as_tasks(tasks)], axis=-1), axis=-1)


def iqm(tasks: TaskScores) -> np.ndarray:
    """Interquartile mean: the mean of the middle half of all runs pooled over tasks."""
    return trim_mean(_pooled(tasks), 0.25)


def optimality_gap(tasks: TaskScores, gamma: float = GAMMA) -> np.ndarray:
    """How far runs fall short of `gamma` on average; scores above it count as `gamma`."""
    return gamma - np.mean(np.minimum(_pooled(tasks), gamma), axis=-1)


def score_profile(tasks: TaskScores, taus: np.ndarray) -> np.ndarray:
    """Fraction of all runs scoring strictly above each tau: shape (..., len(taus))."""
    pooled = _pooled(tasks)
    above = [np.count_nonzero(pooled > tau, axis=-1) for tau in np.asarray(taus)]
    # One threshold at a time: a (reps, taus, runs) comparison would not fit in memory.
    return np.stack(above, axis=-1) / pooled.shape[-1]


def probability_of_improvement(x_tasks: TaskScores, y_tasks: TaskScores) -> np.ndarray:
    """P(X > Y) of a random run of X against one of Y on the same task (ties count 1/2),
    averaged over tasks; `x_tasks` and `y_tasks` list the same tasks in the same order."""
    xs, ys = _as_tasks(x_tasks), _as_tasks(y_tasks)
    if len(xs) != len(ys):
        raise ValueError(f"X has {len(xs)} tasks and Y {len(ys)}; pass the same tasks")
    per_task = []
    for x, y in zip(xs, ys, strict=True):
        pairs_x, pairs_y = x[..., :, None], y[..., None, :]
        wins = (pairs_x > pairs_y).astype(np.float64) + 0.5 * (pairs_x == pairs_y)
        per_task.append(wins.mean(axis=(-2, -1)))
    return np.mean(np.stack(per_task, axis=-1), axis=-1)


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its confidence interval (arrays for profiles)."""

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def stratified_resample(tasks: TaskScores, reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`reps` bootstrap copies of each task, its own runs drawn with replacement: (reps, n)."""
    resampled = []
    for task in _as_tasks(tasks):
        runs = task.reshape(-1)
        resampled.append(runs[rng.integers(0, runs.size, size=(reps, runs.size))])
    return resampled


def bootstrap_ci(
    statistic: Callable[..., np.ndarray],
    *score_sets: TaskScores,
    reps: int = REPS,
    seed: int | Sequence[int] = 0,
    size: float = CI_SIZE,
) -> Interval:
    """`statistic(*score_sets)` with its percentile stratified-bootstrap interval.

    Every score set (one per agent for a two-agent statistic) is resampled independently, each
    task on its own, so the interval reflects the uncertainty of re-running the seeds on the same
    tasks. `seed` feeds numpy's SeedSequence: the same seed gives the same interval.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < size < 1.0:
        raise ValueError(f"size must lie in (0, 1), got {size}")
    point = np.asarray(statistic(*score_sets))
    rng = np.random.default_rng(seed)
    replicates = statistic(*(stratified_resample(s, reps, rng) for s in score_sets))
    tail = 50.0 * (1.0 - size)
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return Interval(point=point, low=low, high=high)
