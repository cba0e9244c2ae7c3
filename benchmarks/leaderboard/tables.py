"""The tables of a board: per task beside the papers, per domain with bootstrap intervals, and
speed; each followed by the protocol it was run under."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from benchmarks import stats
from benchmarks.dataset_summaries import DatasetSummary
from benchmarks.leaderboard.formatting import interval_text, num, seed_list, signed
from benchmarks.leaderboard.render import Block, Table, Text
from benchmarks.leaderboard.reported import Reported, d4rl_counterpart
from benchmarks.leaderboard.selection import REFERENCE_AGENT, Board
from benchmarks.store import FINAL_WINDOW, RunRecord


def bootstrap_seed(seed: int, *names: str) -> list[int]:
    """A bootstrap seed per table entry: adding an agent or task leaves other intervals alone."""
    return [seed, *(int.from_bytes(hashlib.sha256(n.encode()).digest()[:4], "big") for n in names)]


def protocol_text(board: Board) -> str:
    """The protocol line printed under every table of a board, over every run it shows."""
    p = board.protocol
    shown = (*board.records, *board.peers)
    windows = sorted({r.final_window for r in shown})
    fewer = "" if windows == [FINAL_WINDOW] else f" (runs with fewer evaluations: {windows})"
    kinds = {r.score_kind for r in shown}
    scale = (
        "D4RL-normalised scores, 100 (R - R_random) / (R_expert - R_random)"
        if kinds == {"normalized_score"}
        else "D4RL-normalised scores; ‡ marks raw returns (task without reference scores)"
    )
    commits = sorted({(r.git_commit or "unknown")[:10] for r in shown})
    return (
        f"Protocol: {p['steps']:,} gradient steps per seed; evaluation every "
        f"{p['eval_every']:,} steps, {p['eval_episodes']} episodes; final score = mean of the "
        f"last {FINAL_WINDOW} evaluations of a seed{fewer} (TD3+BC's rule; last and best are in "
        f"the store); ± = std over seeds (ddof 0), (n) = seeds; seeds "
        f"{seed_list([r.seed for r in shown])}; {scale}; git commit "
        f"{', '.join(commits)}."
    )


def _mean_std_n(finals: np.ndarray) -> str:
    return f"{num(finals.mean())} ± {num(finals.std())} ({finals.size})" if finals.size else "—"


def task_table(
    board: Board,
    reported: dict[tuple[str, str], Reported],
    datasets: Mapping[tuple[str, str], DatasetSummary],
) -> list[Block]:
    """Per task: the dataset's own episodes where summarised, each agent's mean ± std (n) over
    seeds, each peer implementation's beside it, then the paper's number and the difference."""
    same_data = board.source == "d4rl"

    def paper_of(task: str, agent: str) -> Reported | None:
        if board.raw_returns(task):
            return None  # a raw return is not comparable with a normalised score
        if same_data:
            return reported.get((agent, task))
        return d4rl_counterpart(task, agent, reported)

    agents = board.shown_agents
    with_paper = [a for a in agents if any(paper_of(t, a) for t in board.tasks)]
    data = {t: datasets.get((t, board.dataset_checksum(t))) for t in board.tasks}
    show_data = any(data.values())
    header = ["Task", *(["data (its episodes)"] if show_data else [])]
    for agent in agents:
        header.append(agent)
        header += [f"{agent} {library} (same data)" for library in board.implementations(agent)]
        if agent in with_paper:
            header += [f"{agent} paper", f"{agent} Δ"] if same_data else [f"{agent} paper (D4RL)†"]
    rows = []
    for task in board.tasks:
        row = [task + (" ‡" if board.raw_returns(task) else "")]
        if show_data:
            row.append(data[task].text() if data[task] else "—")
        for agent in agents:
            finals = board.finals(task, agent)
            row.append(_mean_std_n(finals))
            row += [
                _mean_std_n(board.finals(task, agent, lib)) for lib in board.implementations(agent)
            ]
            if agent not in with_paper:
                continue
            paper = paper_of(task, agent)
            if not same_data:
                row.append("—" if paper is None else f"{paper.text()} ({paper.task})")
            elif paper is None:
                row += ["—", "—"]
            else:
                diff = signed(finals.mean() - paper.mean) if finals.size else "—"
                row += [paper.text(), diff]
        rows.append(tuple(row))
    notes = [protocol_text(board)]
    if show_data:
        notes.append(
            "Data: the dataset's own episodes (its behaviour policies'), scored as the runs are: "
            "mean ± std over episodes, the best episode, (episodes); from datasets.jsonl beside "
            "the store. A run above the data's mean did better than the data it learned from."
        )
    for library in sorted({r.implementation for r in board.peers}):
        notes.append(
            f"{library} (same data): the agent's algorithm as implemented in {library}, trained "
            "by offrl peer on the same dataset rows, with the same state normalisation, official "
            "hyper-parameters, evaluation episodes and seeds as ours; compare our column with it "
            "to judge our implementation, and the paper only for orientation."
        )
    papers = [paper_of(t, a) for t in board.tasks for a in with_paper]
    papers = [p for p in papers if p is not None]
    if papers:
        checks = ", ".join(sorted({p.verification for p in papers}))
        notes.append(
            "Paper: the papers' reported mean ± std (benchmarks/reported.csv, which gives each "
            f"number's source and protocol notes; verification: {checks})."
            + (
                " Δ = our mean - paper mean."
                if same_data
                else " † the paper's score on the D4RL dataset of the same environment and "
                "level (named in the cell): a different dataset, shown for orientation only, "
                "so no difference is computed."
            )
        )
    return [Table(tuple(header), tuple(rows)), Text(" ".join(notes))]


def aggregate_table(board: Board, domain: str, reps: int, seed: int) -> list[Block]:
    """Per agent: mean, IQM, optimality gap and P(agent > TD3+BC), with bootstrap CIs."""
    tasks = board.normalized_tasks(domain)
    agents = [a for a in board.agents if any(board.finals(t, a).size for t in tasks)]
    rows = []
    for agent in agents:
        mine = [t for t in tasks if board.finals(t, agent).size]
        scores = [board.finals(t, agent) for t in mine]
        summary = stats.bootstrap_ci(
            _summary_statistics,
            scores,
            reps=reps,
            seed=bootstrap_seed(seed, board.name, domain, agent, "aggregate"),
        )
        parts = [
            stats.Interval(summary.point[i], summary.low[i], summary.high[i]) for i in range(3)
        ]
        rows.append(
            (
                agent + ("*" if len(mine) < len(tasks) else ""),
                str(len(mine)),
                str(sum(s.size for s in scores)),
                *(interval_text(p) for p in parts),
                _improvement_cell(board, agent, tasks, reps, seed, domain),
            )
        )
    header = ("Agent", "Tasks", "Runs", "Mean", "IQM", "Optimality gap", "P(agent > td3bc)")
    note = (
        f"Tasks: {', '.join(tasks)}. [low, high] = 95 % stratified-bootstrap CI, {reps:,} "
        f"repetitions, seed {seed}; optimality gap at gamma = {stats.GAMMA:g}. * = the agent "
        "lacks some of the domain's tasks: its aggregate is not comparable with the others. "
    )
    return [Table(header, tuple(rows)), Text(note + protocol_text(board))]


def _summary_statistics(tasks: stats.TaskScores) -> np.ndarray:
    """Mean, IQM and optimality gap of the same resample, stacked on the last axis."""
    return np.stack(
        [stats.aggregate_mean(tasks), stats.iqm(tasks), stats.optimality_gap(tasks)], axis=-1
    )


def improvement(
    board: Board, agent: str, tasks: list[str], reps: int, seed: int, domain: str
) -> tuple[stats.Interval, int] | None:
    """P(agent > td3bc) over the tasks both ran, with its CI and the number of shared tasks."""
    if agent == REFERENCE_AGENT:
        return None
    shared = [
        t for t in tasks if board.finals(t, agent).size and board.finals(t, REFERENCE_AGENT).size
    ]
    if not shared:
        return None
    interval = stats.bootstrap_ci(
        stats.probability_of_improvement,
        [board.finals(t, agent) for t in shared],
        [board.finals(t, REFERENCE_AGENT) for t in shared],
        reps=reps,
        seed=bootstrap_seed(seed, board.name, domain, agent, "improvement"),
    )
    return interval, len(shared)


def _improvement_cell(
    board: Board, agent: str, tasks: list[str], reps: int, seed: int, domain: str
) -> str:
    found = improvement(board, agent, tasks, reps, seed, domain)
    if found is None:
        return "—"
    interval, shared = found
    return f"{interval_text(interval, 2)} ({shared} task{'s' if shared > 1 else ''})"


def wall_cell(runs: Sequence[RunRecord]) -> str:
    """Median wall time per run in minutes; "≥" when some runs hold only a lower bound."""
    median = num(float(np.median([r.wall_s for r in runs])) / 60.0)
    return median if all(r.wall_whole_run for r in runs) else f"≥ {median}"


def throughput_table(board: Board) -> list[Block]:
    """Speed per agent, then per peer: updates per second per seed and wall time per run
    (medians)."""
    groups = [(agent, [r for r in board.records if r.agent == agent]) for agent in board.agents]
    groups += [
        (
            f"{agent} ({library})",
            [r for r in board.peers if (r.agent, r.implementation) == (agent, library)],
        )
        for agent in board.shown_agents
        for library in board.implementations(agent)
    ]
    rows = [
        (
            label,
            str(len(runs)),
            num(float(np.median([r.updates_per_s for r in runs])), 0),
            wall_cell(runs),
        )
        for label, runs in groups
    ]
    header = ("Agent", "Runs", "Updates/s per seed (median)", "Wall time per run, min (median)")
    note = (
        "Updates/s: gradient updates per second of one seed over the whole run, evaluation "
        "excluded (seeds trained together run in parallel). Wall time: the run's training, all "
        "its seeds, evaluation included, summed over the invocations that trained it (a run "
        "resumed after a stop counts the time before it). ≥: some runs hold only the wall time "
        "of the invocation that finished them (trained by an offrl before that sum, or resumed "
        "from its records), too low where it resumed them, so the median is a lower bound. "
    )
    if board.peers:
        note += (
            "A peer row (library in brackets): that library's own training loop on the same "
            "data, one seed per run. "
        )
    return [Table(header, tuple(rows)), Text(note + protocol_text(board))]
