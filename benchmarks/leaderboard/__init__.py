"""`offrl leaderboard`: LEADERBOARD.md, leaderboard.html and plots from the results store.

The page is a pure function of the store, the reported-scores CSV, the number of bootstrap
repetitions and the seed: regenerating it from the same inputs gives byte-identical md and html
(sorted tables, seeded bootstraps, no timestamps).

Numbers are never pooled across things that differ: every table covers one dataset source (the
task-name prefix `d4rl/`, `minari/`, `offrl/`: a Minari or generated hopper-medium is not D4RL's
file) and one protocol (steps, evaluation interval, episodes), printed under it. Per task, each
agent's column holds the mean ± std over seeds of its final scores, beside the paper's reported
number: with their difference for the same D4RL dataset, for orientation only (no difference) for
another source's counterpart. Per domain, mean, IQM and optimality gap carry rliable's stratified
bootstrap intervals (`benchmarks.stats`); tasks scored in raw returns (no reference scores) stay
out. A peer implementation's runs (`offrl peer`: another library trained on the same rows) get a
column beside the agent's and a dashed curve, and never enter our columns or an aggregate.

Modules, each importing only those above it: domains (task -> domain), formatting (numbers),
reported (the papers' scores), selection (which records make up which board), render (md and
html), tables, plots, page (`build_leaderboard`), command (`main`).
"""

from benchmarks.leaderboard.command import leaderboard_command, main
from benchmarks.leaderboard.domains import task_domain
from benchmarks.leaderboard.page import build_leaderboard
from benchmarks.leaderboard.reported import (
    Reported,
    d4rl_counterpart,
    default_reported_csv,
    read_reported,
)
from benchmarks.leaderboard.selection import Board, Selection, select

__all__ = [
    "Board",
    "Reported",
    "Selection",
    "build_leaderboard",
    "d4rl_counterpart",
    "default_reported_csv",
    "leaderboard_command",
    "main",
    "read_reported",
    "select",
    "task_domain",
]
