"""The papers' reported scores (benchmarks/reported.csv) and their D4RL counterparts."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from benchmarks.leaderboard.domains import task_env
from benchmarks.leaderboard.formatting import num
from benchmarks.store import StoreError

REPORTED_COLUMNS = ("offrl_agent", "offrl_task", "score_mean", "score_std", "verification")


@dataclass(frozen=True)
class Reported:
    """One reported score: `task` is an offrl task name (d4rl/...), `agent` an offrl agent."""

    agent: str
    task: str
    mean: float
    std: float | None
    verification: str

    def text(self) -> str:
        return num(self.mean) if self.std is None else f"{num(self.mean)} ± {num(self.std)}"


def default_reported_csv() -> Path:
    return Path(str(resources.files("benchmarks") / "reported.csv"))


def read_reported(path: Path) -> dict[tuple[str, str], Reported]:
    """(agent, task) -> reported score, from benchmarks/reported.csv."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError as err:
        raise StoreError(f"reported scores {path} do not exist") from err
    missing = [c for c in REPORTED_COLUMNS if rows and c not in rows[0]]
    if missing:
        raise StoreError(f"{path} lacks the column(s) {', '.join(missing)}")
    reported = {}
    for number, row in enumerate(rows, start=2):
        try:
            score = Reported(
                agent=row["offrl_agent"],
                task=row["offrl_task"],
                mean=float(row["score_mean"]),
                std=float(row["score_std"]) if row["score_std"].strip() else None,
                verification=row["verification"],
            )
        except ValueError as err:
            raise StoreError(f"{path}, line {number}: {err}") from err
        reported[(score.agent, score.task)] = score
    return reported


def d4rl_counterpart(
    task: str, agent: str, reported: dict[tuple[str, str], Reported]
) -> Reported | None:
    """The paper's score on the D4RL dataset a non-D4RL task imitates (same env and level,
    highest D4RL version): a different dataset, so shown for orientation only."""
    found = task_env(task)
    if found is None:
        return None
    env, rest = found
    level = "-".join(w for w in rest if not re.fullmatch(r"v\d+", w))
    prefix = f"d4rl/{env}-{level}-v"
    matches = [
        r
        for (a, t), r in reported.items()
        if a == agent and t.startswith(prefix) and t[len(prefix) :].isdigit()
    ]
    return max(matches, key=lambda r: int(r.task[len(prefix) :]), default=None)
