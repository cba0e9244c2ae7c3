"""`offrl status`: what a bench profile's store holds and what it still lacks, ours and the peers'.

A run counts as stored exactly when `offrl bench` (or `offrl peer`) would skip it: the same
planners decide, so "complete" here means that neither would train anything. An unfinished run
with a folder shows the last step it reached. Nothing is trained or made: the runs of a task whose
dataset the bench would make first are all missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import tyro

from benchmarks import peer, runner
from benchmarks.configs import Profile, profile_named, select
from benchmarks.datasets import checksums_on_disk
from offrl.errors import ConfigError
from offrl.run_files import read_records


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (implementation's agent, task): seeds stored of the profile's, and where unfinished
    runs got to (seed -> last step reached)."""

    stored: int
    wanted: int
    reached: dict[int, int]

    def text(self) -> str:
        steps = ", ".join(f"s{seed} at {step:,}" for seed, step in sorted(self.reached.items()))
        return f"{self.stored}/{self.wanted}" + (f" ({steps})" if steps else "")


Cells = dict[tuple[str, str], Cell]
Row = tuple[str, str, Cells]  # label, agent, (agent, task) -> cell


def evaluated_step(run_dir: Path, seed: int) -> int:
    """The last step a seed of an offrl run folder evaluated (0: none yet)."""
    rows = [r for r in read_records(run_dir) if r.get("seed") == seed and "return" in r]
    return max((r["step"] for r in rows), default=0)


def our_cells(profile: Profile, checksums: dict[str, str | None], results: Path) -> Cells:
    """(agent, task) -> Cell for offrl's runs, by the bench's own planner."""
    specs = runner.plan(profile, _ready(checksums), results)
    unfinished = [
        (spec.agent, spec.task, seed, evaluated_step(spec.run_dir(results), seed))
        for spec in specs
        for seed in spec.seeds
    ]
    return _cells(profile, profile.agents, checksums, unfinished)


def peer_cells(profile: Profile, checksums: dict[str, str | None], results: Path) -> Cells:
    """(agent, task) -> Cell for the peer library's runs, by `offrl peer`'s planner."""
    specs = peer.plan(profile, _ready(checksums), results, peer.PEER_AGENTS)
    unfinished = [
        (spec.agent, spec.task, spec.seed, peer.resume_point(spec.run_dir(results))[0])
        for spec in specs
    ]
    return _cells(profile, peer.PEER_AGENTS, checksums, unfinished)


def _ready(checksums: dict[str, str | None]) -> dict[str, str]:
    return {task: checksum for task, checksum in checksums.items() if checksum}


def _cells(
    profile: Profile,
    agents: Sequence[str],
    checksums: dict[str, str | None],
    unfinished: Sequence[tuple[str, str, int, int]],
) -> Cells:
    """Cells from the planned (agent, task, seed, step reached) runs; a task without its
    dataset lacks every seed."""
    missing: dict[tuple[str, str], dict[int, int]] = {
        (agent, task): {} if checksum else dict.fromkeys(profile.seeds, 0)
        for agent in agents
        for task, checksum in checksums.items()
    }
    for agent, task, seed, step in unfinished:
        missing[agent, task][seed] = step
    seeds = len(profile.seeds)
    return {
        key: Cell(seeds - len(gone), seeds, {seed: step for seed, step in gone.items() if step})
        for key, gone in missing.items()
    }


def table(rows: Sequence[Row], tasks: Sequence[str]) -> str:
    """A Markdown table: one row per (label, agent, cells), one column per task."""
    lines = [
        "| runs stored | " + " | ".join(tasks) + " | all |",
        "|---" * (len(tasks) + 2) + "|",
    ]
    for label, agent, cells in rows:
        row = [cells[agent, task] for task in tasks]
        stored, wanted = sum(c.stored for c in row), sum(c.wanted for c in row)
        texts = " | ".join(cell.text() for cell in row)
        lines.append(f"| {label} | {texts} | {stored}/{wanted} |")
    return "\n".join(lines)


def totals(cells: Cells) -> tuple[int, int]:
    return sum(c.stored for c in cells.values()), sum(c.wanted for c in cells.values())


def report(profile: Profile, results: Path) -> str:
    """The whole status text of a profile's store."""
    checksums = checksums_on_disk(profile)
    tasks = list(checksums)
    ours = our_cells(profile, checksums, results)
    rows: list[Row] = [(agent, agent, ours) for agent in profile.agents]
    stored, wanted = totals(ours)
    lines = [f"offrl: {stored} of {wanted} runs stored"]
    try:
        peers = peer_cells(profile, checksums, results)
    except ConfigError as err:  # d3rlpy absent: the peers' configs name its version
        lines.append(f"{peer.LIBRARY} peers: unknown ({err})")
    else:
        rows += [(f"{agent} ({peer.LIBRARY})", agent, peers) for agent in peer.PEER_AGENTS]
        stored, wanted = totals(peers)
        lines.append(f"{peer.LIBRARY} peers: {stored} of {wanted} runs stored")
    unmade = [task for task, checksum in checksums.items() if checksum is None]
    if unmade:
        lines.append(f"no standard dataset on disk yet (the bench makes it): {', '.join(unmade)}")
    head = (
        f"profile {profile.name}, store {results / 'runs.jsonl'}: {profile.steps:,} steps, "
        f"evaluation every {profile.eval_every:,} ({profile.eval_episodes} episodes), "
        f"seeds {', '.join(map(str, profile.seeds))}"
    )
    note = "(a/b: seeds stored of the profile's; sN at STEP: an unfinished run's last step)"
    return "\n".join([head, "", table(rows, tasks), note, "", *lines])


@dataclasses.dataclass
class StatusArgs:
    """What a bench profile's store holds and lacks, ours and the peers'; trains nothing."""

    profile: str = "default"
    """The bench profile (default | smoke | repro | antmaze | full)."""
    results: Path = Path("results")
    """Folder of the store (runs.jsonl) and of the run folders."""
    tasks: tuple[str, ...] | None = None
    """Only these tasks of the profile (default: all of them)."""


def main(argv: list[str]) -> int:
    """`offrl status`; errors are OffrlErrors, reported by the CLI."""
    args = tyro.cli(StatusArgs, args=argv, prog="offrl status")
    print(report(select(profile_named(args.profile), None, args.tasks), args.results))
    return 0
