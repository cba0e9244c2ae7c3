"""The plots of a board as PNG bytes: learning curves, performance profiles, improvement."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from benchmarks import stats
from benchmarks.leaderboard.selection import REFERENCE_AGENT, Board
from benchmarks.leaderboard.tables import bootstrap_seed, improvement
from benchmarks.store import RunRecord

PROFILE_POINTS = 101


def _figure(height: float = 4.0):
    """A figure on the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    """PNG bytes without the Software tag, so equal figures give equal bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _colors(agents: Sequence[str]) -> dict[str, str]:
    """One colour per agent with a column, shared by its peers' curves and by every plot."""
    return {a: f"C{i % 10}" for i, a in enumerate(agents)}


def _mean_curve(runs: Sequence[RunRecord]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The steps every run evaluated at, and the mean and std over runs of their scores."""
    steps = sorted(set.intersection(*(set(r.curve_steps) for r in runs)))
    curves = np.array(
        [[dict(zip(r.curve_steps, r.curve_scores, strict=True))[s] for s in steps] for r in runs]
    )
    return steps, curves.mean(axis=0), curves.std(axis=0)


def curve_png(board: Board, task: str) -> bytes:
    """Mean ± std over seeds of each agent's evaluations against gradient steps; a peer's
    dashed, in its agent's colour."""
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors(board.shown_agents)
    for agent in board.shown_agents:
        runs = board.runs(task, agent)
        if runs:
            steps, mean, std = _mean_curve(runs)
            ax.plot(steps, mean, color=colors[agent], label=f"{agent} ({len(runs)} seeds)")
            ax.fill_between(steps, mean - std, mean + std, color=colors[agent], alpha=0.2)
        for library in board.implementations(agent):
            peer_runs = board.runs(task, agent, library)
            if not peer_runs:
                continue
            steps, mean, std = _mean_curve(peer_runs)
            label = f"{agent} ({library}, {len(peer_runs)} seeds)"
            ax.plot(steps, mean, color=colors[agent], linestyle="--", label=label)
            ax.fill_between(steps, mean - std, mean + std, color=colors[agent], alpha=0.1)
    ax.set(
        title=task,
        xlabel="gradient steps",
        ylabel="return" if board.raw_returns(task) else "normalised score",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def profile_png(board: Board, domain: str, reps: int, seed: int) -> bytes:
    """Score distributions: fraction of runs above each tau, with 95 % bootstrap bands."""
    tasks = board.normalized_tasks(domain)
    agents = [a for a in board.agents if any(board.finals(t, a).size for t in tasks)]
    top = max(
        float(board.finals(t, a).max()) for t in tasks for a in agents if board.finals(t, a).size
    )
    taus = np.linspace(0.0, max(stats.GAMMA, 10.0 * np.ceil(top / 10.0)), PROFILE_POINTS)
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors(board.shown_agents)
    for agent in agents:
        scores = [board.finals(t, agent) for t in tasks if board.finals(t, agent).size]
        profile = stats.bootstrap_ci(
            lambda s: stats.score_profile(s, taus),
            scores,
            reps=min(reps, stats.PROFILE_REPS),
            seed=bootstrap_seed(seed, board.name, domain, agent, "profile"),
        )
        ax.plot(taus, profile.point, color=colors[agent], label=agent)
        ax.fill_between(taus, profile.low, profile.high, color=colors[agent], alpha=0.2)
    ax.set(
        title=f"{board.source} {domain}: performance profile",
        xlabel="normalised score τ",
        ylabel="fraction of runs with score > τ",
        ylim=(0.0, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return _png(fig)


def improvement_png(board: Board, domain: str, reps: int, seed: int) -> bytes | None:
    """P(agent > td3bc) with 95 % CIs for every other agent; None when there is nothing to plot."""
    tasks = board.normalized_tasks(domain)
    found = [(a, improvement(board, a, tasks, reps, seed, domain)) for a in board.agents]
    found = [(a, f[0]) for a, f in found if f is not None]
    if not found:
        return None
    fig = _figure(height=1.2 + 0.5 * len(found))
    ax = fig.add_subplot()
    colors = _colors(board.shown_agents)
    for y, (agent, interval) in enumerate(found):
        point, low, high = float(interval.point), float(interval.low), float(interval.high)
        ax.errorbar(
            point, y, xerr=[[point - low], [high - point]], fmt="o", color=colors[agent], capsize=4
        )
    ax.axvline(0.5, color="grey", linestyle="--")
    ax.set_yticks(range(len(found)), [f"P({a} > {REFERENCE_AGENT})" for a, _ in found])
    ax.set(
        xlim=(-0.02, 1.02),
        ylim=(-0.5, len(found) - 0.5),
        title=f"{board.source} {domain}: probability of improvement",
    )
    ax.set_xlabel("probability (95 % stratified-bootstrap CI)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)
