"""The learning curve of a SAC behaviour run, with a shipped entry's choices marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from offrl.behavior.manifest import EnvPolicies, SnapshotPhase
from offrl.behavior.run_record import read_behavior_run
from offrl.errors import ConfigError
from offrl.run_files import read_records


def plot_curve(run_dir: str | Path, path: str | Path, entry: EnvPolicies | None = None) -> Path:
    """Training-time evaluation return against env steps (PNG); with a shipped entry, the
    expert bar, the medium target and the chosen snapshots are marked."""
    run_dir, path = Path(run_dir), Path(path)
    records = read_records(run_dir)
    if not records:
        raise ConfigError(f"{run_dir} has no records.jsonl evaluations to plot yet.")
    steps = np.asarray([r["step"] for r in records])
    mean = np.asarray([r["eval_return"] for r in records])
    std = np.asarray([r.get("eval_return_std", 0.0) for r in records])
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    axes.plot(steps, mean, color="C0", label="evaluation return (10 episodes)")
    axes.fill_between(steps, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0)
    title = plot_title(run_dir)
    if entry is not None:
        mark_choices(axes, entry, dict(zip(steps.tolist(), mean.tolist(), strict=True)))
    axes.set(xlabel="environment steps", ylabel="return", title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def plot_title(run_dir: Path) -> str:
    """The env and seed the run trained, from its run.json (the folder's name without one)."""
    run = read_behavior_run(run_dir)
    if run is None:
        return f"SAC on {run_dir.name}, seed ?"
    return f"SAC on {run.env}, seed {run.seed}"


def mark_choices(axes, entry: EnvPolicies, recorded: dict[int, float]) -> None:
    """The expert bar, the medium target, the measured replay snapshots, and the medium and
    expert snapshots at their training-time returns (`recorded`, by step)."""
    if entry.expert_min_return is not None:
        axes.axhline(entry.expert_min_return, color="C3", ls="--", lw=1, label="expert bar")
    axes.axhline(entry.medium.target, color="C2", ls=":", lw=1, label="expert / 3")
    replay = [p for p in entry.replay if isinstance(p, SnapshotPhase)]
    axes.plot(
        [p.step for p in replay],
        [p.return_mean for p in replay],
        "|",
        color="C7",
        ms=10,
        label="replay snapshots (measured)",
    )
    for name, policy, marker in (("medium", entry.medium, "o"), ("expert", entry.expert, "*")):
        axes.plot([policy.step], [recorded[policy.step]], marker, color="C1", ms=9, label=name)
