"""Choosing the snapshots to ship, as D4RL chose its policies: the expert is the best snapshot,
the medium one the early snapshot whose return is about a third of the expert's, and the replay
phases are the snapshots before it, each standing for the training steps it played. `choose`
measures the snapshots it compares (offrl.behavior.measure), each once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from offrl.behavior.manifest import env_short_name
from offrl.behavior.measure import (
    EVAL_SEED,
    SnapshotMeter,
    episode_returns_of,
    uniform_batch_policy,
)
from offrl.behavior.runs import Sources
from offrl.errors import ConfigError
from offrl.nets import TanhGaussianActor

MEDIUM_FRACTION = 1.0 / 3.0
"""D4RL's medium policy reached about a third of the expert's return."""

Phases = list[tuple[int | None, int]]
"""(snapshot step, or None for uniform random actions; the env steps it played)."""


def medium_window(recorded: dict[int, float], target: float) -> list[int]:
    """Snapshot steps before training first clearly passed the medium level (twice the target):
    the early-stopped policy D4RL used, not a later collapse that happens to score the same."""
    steps = []
    for step, value in recorded.items():
        if value > 2.0 * target:
            break
        steps.append(step)
    return steps


def closest(steps: Sequence[int], score: Callable[[int], float], count: int) -> list[int]:
    """The `count` steps with the smallest score, best first."""
    return sorted(steps, key=score)[:count]


def pick_expert(recorded: dict[int, float], returns_at: Callable[[int], float], count: int) -> int:
    """Of the `count` snapshots with the best training-time returns, the best measured one."""
    return max(closest(list(recorded), lambda s: -recorded[s], count), key=returns_at)


def pick_medium(
    recorded: dict[int, float],
    returns_at: Callable[[int], float],
    expert_step: int,
    target: float,
    count: int,
) -> int | None:
    """Of the `count` early snapshots (see medium_window) before the expert whose training-time
    return is closest to `target`, the one whose measured return is closest; None if none."""
    window = [s for s in medium_window(recorded, target) if s < expert_step]
    shortlist = closest(window, lambda s: abs(recorded[s] - target), count)
    return min(shortlist, key=lambda s: abs(returns_at(s) - target), default=None)


def replay_phases(snapshot_steps: Sequence[int], medium_step: int, start_steps: int) -> Phases:
    """(snapshot step or None for uniform random, env steps it played) for training steps
    [0, medium_step): steps before `start_steps` were uniform random (SAC's warm-up), later
    ones were played by the newest snapshot saved at or before them."""
    before = sorted(s for s in snapshot_steps if s < medium_step)
    random_steps = min(start_steps, medium_step)
    phases: Phases = [(None, random_steps)] if random_steps else []
    starts = [max(s, random_steps) for s in before]
    if before:
        starts[0] = random_steps  # the first snapshot also stands for any gap before it
    ends = [*starts[1:], medium_step]
    phases += [(s, e - b) for s, b, e in zip(before, starts, ends, strict=True) if e > b]
    return phases


def thin_phases(phases: Phases, keep: int) -> Phases:
    """At most `keep` snapshot phases, evenly spaced; a dropped phase's steps go to the kept one
    before it, so the proportions of training time stay as they were."""
    random = [p for p in phases if p[0] is None]
    snapshots = [p for p in phases if p[0] is not None]
    if len(snapshots) <= keep:
        return phases
    kept = sorted({int(i) for i in np.round(np.linspace(0, len(snapshots) - 1, keep))})
    merged = []
    for index, (step, steps) in enumerate(snapshots):
        if index in kept:
            merged.append([step, steps])
        else:
            merged[-1][1] += steps
    return random + [(step, steps) for step, steps in merged]


# --- choosing with measured returns ----------------------------------------------------------


@dataclass(frozen=True)
class ShipOptions:
    """What `ship` was asked for that choosing depends on."""

    episodes: int
    replay_snapshots: int
    candidates: int
    allow_below_threshold: bool
    progress: bool


@dataclass(frozen=True)
class Choice:
    """The snapshots chosen, and every return measured while choosing them."""

    expert_step: int
    below_threshold: bool
    target: float
    medium_step: int
    phases: Phases
    measured: dict[int, np.ndarray]
    random_returns: np.ndarray


def choose(sources: Sources, bar_return: float | None, options: ShipOptions) -> Choice:
    """Pick the expert, the medium snapshot and the replay phases, measuring what they need."""
    run = sources.run
    actor = TanhGaussianActor(tuple(run.config["hidden_dims"]), run.spec.action_dim)
    measure, envs = episode_returns_of(run.env, options.episodes)
    short = env_short_name(run.env)
    bar = tqdm(
        desc=f"measure {short}", unit="policy", disable=not options.progress, dynamic_ncols=True
    )
    meter = SnapshotMeter(measure, actor, run.spec.obs_dim, sources.snapshot_runs, bar)
    try:
        expert_step, below = choose_expert(sources, meter, bar_return, options)
        target = MEDIUM_FRACTION * meter.mean_return(expert_step)
        medium_step = choose_medium(sources, meter, expert_step, target, options.candidates)
        phases = replay_phases(
            list(sources.snapshot_runs), medium_step, run.protocol["start_steps"]
        )
        phases = thin_phases(phases, options.replay_snapshots)
        for step, _ in phases:
            if step is not None:
                meter.mean_return(step)
        random_returns = measure(uniform_batch_policy(envs.single_action_space, EVAL_SEED))
    finally:
        bar.close()
        envs.close()
    return Choice(expert_step, below, target, medium_step, phases, meter.measured, random_returns)


def choose_expert(
    sources: Sources, meter: SnapshotMeter, bar_return: float | None, options: ShipOptions
) -> tuple[int, bool]:
    """(the expert's step, whether it is below the bar); refused below it unless allowed."""
    expert_step = pick_expert(sources.recorded, meter.mean_return, options.candidates)
    below = bar_return is None or meter.mean_return(expert_step) < bar_return
    if below and not options.allow_below_threshold:
        raise ConfigError(
            f"The best snapshot of {sources.run_dir} (step {expert_step}) returns "
            f"{meter.mean_return(expert_step):.1f} over {options.episodes} episodes, below the "
            f"expert bar {bar_return:.0f} for {sources.run.env}: train longer (the run "
            "resumes from its checkpoint) and ship again."
        )
    return expert_step, below


def choose_medium(
    sources: Sources, meter: SnapshotMeter, expert_step: int, target: float, candidates: int
) -> int:
    medium_step = pick_medium(sources.recorded, meter.mean_return, expert_step, target, candidates)
    if medium_step is None:
        raise ConfigError(
            f"Every snapshot of {sources.run_dir} before the expert already returns more than "
            f"{2 * target:.0f}: no medium policy (about {target:.0f}) to ship."
        )
    return medium_step
