"""`offrl leaderboard`: the command line over `build_leaderboard`."""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from pathlib import Path

import tyro

from benchmarks import stats
from benchmarks.leaderboard.page import build_leaderboard
from benchmarks.store import DEFAULT_STORE
from offrl.errors import OffrlError


def leaderboard_command(
    store: Path = DEFAULT_STORE,
    out: Path | None = None,
    reps: int = stats.REPS,
    seed: int = 0,
    reported: Path | None = None,
    behavior_versions: tyro.conf.Suppress[Mapping[str, int] | None] = None,
) -> list[Path]:
    """Write LEADERBOARD.md, leaderboard.html and plots from the results store.

    Args:
        store: The results store (JSON lines) that bench runs append to.
        out: Folder for the page and its plots (default: the store's folder).
        reps: Bootstrap repetitions of every confidence interval (rliable's default 50,000).
        seed: Seed of the bootstraps: the same seed regenerates the same page.
        reported: The papers' reported scores (default: benchmarks/reported.csv).
        behavior_versions: Each agent's current behaviour version (set by the caller, not a
            flag): runs of older versions are left out.
    """
    return build_leaderboard(
        store, reported, out, bootstrap_reps=reps, seed=seed, behavior_versions=behavior_versions
    )


def main(argv: list[str], behavior_versions: Mapping[str, int] | None = None) -> int:
    """`offrl leaderboard [--store PATH] [--out DIR] [--reps N] [--seed N] [--reported CSV]`."""
    command = functools.partial(leaderboard_command, behavior_versions=behavior_versions)
    try:
        written = tyro.cli(command, args=argv, prog="offrl leaderboard")
    except OffrlError as err:
        print(f"offrl: error: {err}", file=sys.stderr)
        return 1
    pages = [p for p in written if p.suffix != ".png"]
    print(f"wrote {', '.join(str(p) for p in pages)} and {len(written) - len(pages)} plots")
    return 0
