"""What each dataset's own episodes score: the behaviour data a board's agents learned from.

One line per (task, dataset checksum) in `RESULTS/datasets.jsonl`, written by the bench and the
peer the first time they train on a dataset, and read by the leaderboard, which shows it beside
the agents' scores: on generated data the papers' numbers cannot say what a good score is, the
data's own can. Episodic data only (see `episodic`). Kept beside the store, not read from disk at
render time, so a board regenerates to the same bytes on a machine without the datasets.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from benchmarks.store import StoreError, append_lines, read_jsonl
from offrl.data.registry import LoadedTask, load_task
from offrl.data.transitions import episode_returns
from offrl.envs.families import FAMILIES, env_family
from offrl.errors import OffrlError
from offrl.progress import progress_shown

DATASETS_FILE = "datasets.jsonl"


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    """A dataset's episodes, scored as the agents are: normalised scores where the task has
    reference scores, else raw returns."""

    task: str
    dataset_checksum: str
    episodes: int
    score_kind: str
    mean: float
    std: float
    best: float

    def text(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f}, best {self.best:.1f} ({self.episodes:,} ep.)"


def summarize(loaded: LoadedTask) -> DatasetSummary:
    returns = episode_returns(loaded.transitions)
    normalized = loaded.task.normalized_score(returns)
    scores = returns if normalized is None else normalized
    return DatasetSummary(
        task=loaded.task.name,
        dataset_checksum=loaded.checksum,
        episodes=int(scores.size),
        score_kind="return" if normalized is None else "normalized_score",
        mean=float(np.mean(scores)),
        std=float(np.std(scores)),
        best=float(np.max(scores)),
    )


def read_summaries(results: Path) -> dict[tuple[str, str], DatasetSummary]:
    """(task, dataset checksum) -> summary; none where the file is absent."""
    path = Path(results) / DATASETS_FILE
    if not path.exists():
        return {}
    remedy = "Delete that line: the next bench or leaderboard writes it again from the dataset."
    summaries = {}
    for number, row in read_jsonl(path, remedy):
        try:
            summary = DatasetSummary(**row)
        except TypeError as err:
            problem = f"{path}, line {number}: not a dataset summary ({err})."
            raise StoreError(f"{problem} {remedy}") from None
        summaries[summary.task, summary.dataset_checksum] = summary
    return summaries


def episodic(task: str) -> bool:
    """Whether a dataset's episodes are what an evaluation plays: not for navigation, whose data
    are continuing streams with goals resampled on arrival (AntMaze's end at every goal step)."""
    family = env_family(task)
    return family is None or FAMILIES[family].domain not in ("maze", "antmaze")


def record_summaries(results: Path, datasets: Iterable[tuple[str, str]]) -> None:
    """Append the summary of each (task, dataset checksum) the file lacks, read from the dataset
    on disk when it is still the one with that checksum (else left for a later call)."""
    known = read_summaries(results)
    new = []
    for task, checksum in sorted(set(datasets)):
        if (task, checksum) in known or not episodic(task):
            continue
        try:
            with progress_shown(False):
                loaded = load_task(task)
        except OffrlError:  # not on disk here (or no longer a known task): left for later
            continue
        if loaded.checksum == checksum:
            new.append(json.dumps(dataclasses.asdict(summarize(loaded))) + "\n")
    append_lines(Path(results) / DATASETS_FILE, new)
