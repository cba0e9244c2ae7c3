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
out.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import tyro

from benchmarks import stats
from benchmarks.store import DEFAULT_STORE, FINAL_WINDOW, RunRecord, StoreError, read_store
from offrl.errors import OffrlError
from offrl.results import atomic_write

REFERENCE_AGENT = "td3bc"  # probability of improvement is reported over TD3+BC
SOURCE_TITLES = {
    "d4rl": "D4RL dataset files (d4rl/)",
    "minari": "Minari datasets (minari/)",
    "offrl": "offrl-generated datasets (offrl/)",
}
# Checked in this order, so "antmaze" is never taken for "ant".
DOMAIN_OF_ENV = {
    "antmaze": "antmaze",
    "pointmaze": "maze",
    "maze2d": "maze",
    "halfcheetah": "locomotion",
    "walker2d": "locomotion",
    "hopper": "locomotion",
    "ant": "locomotion",
}
DOMAIN_ORDER = ("locomotion", "maze", "antmaze", "other")
PROFILE_POINTS = 101
METHOD = (
    "Method (rliable, Agarwal et al. 2021): each run contributes its final score. Per domain, "
    "mean = mean of the per-task means; IQM = 25 % trimmed mean of all runs x tasks; "
    f"optimality gap = mean of max({stats.GAMMA:g} - score, 0); P(agent > td3bc) = chance that a "
    "run of the agent beats a run of td3bc on the same task (ties count 1/2), averaged over "
    "their shared tasks; performance profile = fraction of runs scoring above tau. Confidence "
    "intervals are percentile intervals of a stratified bootstrap: runs resampled with "
    "replacement within each task, independently per task and per agent. Tasks scored in raw "
    "returns (no reference scores) stay out of every aggregate."
)
REPORTED_COLUMNS = ("offrl_agent", "offrl_task", "score_mean", "score_std", "verification")


# --- the papers' reported scores -----------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """One reported score: `task` is an offrl task name (d4rl/...), `agent` an offrl agent."""

    agent: str
    task: str
    mean: float
    std: float | None
    verification: str

    def text(self) -> str:
        return _num(self.mean) if self.std is None else f"{_num(self.mean)} ± {_num(self.std)}"


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


def task_env(task: str) -> tuple[str, list[str]] | None:
    """The environment a task name mentions and the name's words after it, or None."""
    words = re.split(r"[/_\-]", task.lower())[1:]
    for env in DOMAIN_OF_ENV:
        if env in words:
            return env, words[words.index(env) + 1 :]
    return None


def task_domain(task: str) -> str:
    """locomotion, maze, antmaze, or other."""
    found = task_env(task)
    return "other" if found is None else DOMAIN_OF_ENV[found[0]]


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


# --- which records make up which table ------------------------------------------------------


@dataclass(frozen=True)
class Board:
    """The runs of one source under one protocol: one section of the page."""

    source: str
    protocol: dict[str, int]
    protocol_hash: str
    records: tuple[RunRecord, ...]

    @property
    def name(self) -> str:
        return f"{self.source}-{self.protocol_hash[:8]}"

    @property
    def tasks(self) -> list[str]:
        """Grouped by domain (locomotion, maze, antmaze, other), then by name."""
        return sorted(
            {r.task for r in self.records}, key=lambda t: (DOMAIN_ORDER.index(task_domain(t)), t)
        )

    @property
    def agents(self) -> list[str]:
        return sorted({r.agent for r in self.records}, key=lambda a: (a != REFERENCE_AGENT, a))

    def runs(self, task: str, agent: str) -> list[RunRecord]:
        return sorted(
            (r for r in self.records if r.task == task and r.agent == agent), key=lambda r: r.seed
        )

    def finals(self, task: str, agent: str) -> np.ndarray:
        return np.array([r.final for r in self.runs(task, agent)], dtype=np.float64)

    def normalized_tasks(self, domain: str) -> list[str]:
        """The domain's tasks scored in normalised scores: the only ones aggregated."""
        return [
            t
            for t in self.tasks
            if task_domain(t) == domain
            and all(r.score_kind == "normalized_score" for r in self.records if r.task == t)
        ]


@dataclass(frozen=True)
class Selection:
    boards: list[Board]
    superseded: int  # records replaced by a later record of the same run key
    outdated: int  # records of an (agent, task) whose config, or of a task whose dataset, changed
    old_behavior: int  # records trained by an older version of their agent's update


def select(
    records: Sequence[RunRecord], behavior_versions: Mapping[str, int] | None = None
) -> Selection:
    """Latest record per run key, none trained by another behaviour version than the agent's
    current one (`behavior_versions`: agent -> version; agents not named keep every version);
    per (protocol, agent, task) only the latest config, and per (protocol, task) only the latest
    dataset checksum, for every agent: agents on one row always trained on the same data."""
    versions = behavior_versions or {}

    def current_version(r: RunRecord) -> bool:
        return versions.get(r.agent, r.behavior_version) == r.behavior_version

    latest = {r.key: r for r in records}
    current_behavior = [r for r in latest.values() if current_version(r)]
    config, dataset = {}, {}
    for r in records:  # file order: the last appended config and dataset win
        if current_version(r):
            config[(r.protocol_hash, r.agent, r.task)] = r.config_hash
            dataset[(r.protocol_hash, r.task)] = r.dataset_checksum
    kept = [
        r
        for r in current_behavior
        if config[(r.protocol_hash, r.agent, r.task)] == r.config_hash
        and dataset[(r.protocol_hash, r.task)] == r.dataset_checksum
    ]
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in kept:
        groups.setdefault((r.source, r.protocol_hash), []).append(r)
    boards = [
        Board(source, rs[0].protocol, phash, tuple(rs))
        for (source, phash), rs in sorted(groups.items(), key=lambda kv: _board_order(kv[1][0]))
    ]
    return Selection(
        boards,
        superseded=len(records) - len(latest),
        outdated=len(current_behavior) - len(kept),
        old_behavior=len(latest) - len(current_behavior),
    )


def _board_order(record: RunRecord) -> tuple:
    """Sources in a fixed order, then the longest protocol first, then the hash."""
    order = list(SOURCE_TITLES)
    rank = order.index(record.source) if record.source in order else len(order)
    return (rank, record.source, -record.protocol["steps"], record.protocol_hash)


# --- formatting ------------------------------------------------------------------------------


def _num(x: float, digits: int = 1) -> str:
    text = f"{x:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def _signed(x: float) -> str:
    text = _num(x)
    return text if text.startswith("-") or float(text) == 0.0 else f"+{text}"


def _interval(interval: stats.Interval, digits: int = 1) -> str:
    return (
        f"{_num(float(interval.point), digits)} "
        f"[{_num(float(interval.low), digits)}, {_num(float(interval.high), digits)}]"
    )


def _seed_list(seeds: Sequence[int]) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _stream(seed: int, *names: str) -> list[int]:
    """A bootstrap seed per table entry: adding an agent or task leaves other intervals alone."""
    return [seed, *(int.from_bytes(hashlib.sha256(n.encode()).digest()[:4], "big") for n in names)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")


def protocol_text(board: Board) -> str:
    """The protocol line printed under every table of a board."""
    p = board.protocol
    windows = sorted({r.final_window for r in board.records})
    fewer = "" if windows == [FINAL_WINDOW] else f" (runs with fewer evaluations: {windows})"
    kinds = {r.score_kind for r in board.records}
    scale = (
        "D4RL-normalised scores, 100 (R - R_random) / (R_expert - R_random)"
        if kinds == {"normalized_score"}
        else "D4RL-normalised scores; ‡ marks raw returns (task without reference scores)"
    )
    commits = sorted({(r.git_commit or "unknown")[:10] for r in board.records})
    return (
        f"Protocol: {p['steps']:,} gradient steps per seed; evaluation every "
        f"{p['eval_every']:,} steps, {p['eval_episodes']} episodes; final score = mean of the "
        f"last {FINAL_WINDOW} evaluations of a seed{fewer} (TD3+BC's rule; last and best are in "
        f"the store); ± = std over seeds (ddof 0), (n) = seeds; seeds "
        f"{_seed_list([r.seed for r in board.records])}; {scale}; git commit "
        f"{', '.join(commits)}."
    )


# --- the page as blocks, rendered twice ------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the page
    alt: str


@dataclass(frozen=True)
class Links:
    lead: str
    items: tuple[tuple[str, str], ...]  # (label, relative path)


Block = Heading | Text | Table | Image | Links


def render_markdown(blocks: Sequence[Block]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Text):
            parts.append(b.text)
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(cell(h) for h in b.header) + " |"]
            lines.append("|" + "|".join("---" for _ in b.header) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
        elif isinstance(b, Image):
            parts.append(f"![{b.alt}]({b.path})")
        else:
            parts.append(b.lead + " " + " · ".join(f"[{label}]({path})" for label, path in b.items))
    return "\n\n".join(parts) + "\n"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:80em;margin:auto;padding:1em}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    "p.note{color:#444;font-size:90%}img{max-width:100%}"
)


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page (inline style, no scripts); images are files beside it."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{HTML_STYLE}</style></head><body>",
    ]
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            parts.append(f'<p class="note">{e(b.text)}</p>')
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(b, Image):
            parts.append(f'<p><img src="{e(b.path)}" alt="{e(b.alt)}"></p>')
        else:
            links = " · ".join(f'<a href="{e(path)}">{e(label)}</a>' for label, path in b.items)
            parts.append(f"<p>{e(b.lead)} {links}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- tables ----------------------------------------------------------------------------------


def task_table(board: Board, reported: dict[tuple[str, str], Reported]) -> list[Block]:
    """Per task: each agent's mean ± std (n) over seeds, the paper's number and the difference."""
    same_data = board.source == "d4rl"

    def paper_of(task: str, agent: str) -> Reported | None:
        if any(r.score_kind == "return" for r in board.records if r.task == task):
            return None  # a raw return is not comparable with a normalised score
        if same_data:
            return reported.get((agent, task))
        return d4rl_counterpart(task, agent, reported)

    with_paper = [a for a in board.agents if any(paper_of(t, a) for t in board.tasks)]
    header = ["Task"]
    for agent in board.agents:
        header.append(agent)
        if agent in with_paper:
            header += [f"{agent} paper", f"{agent} Δ"] if same_data else [f"{agent} paper (D4RL)†"]
    rows = []
    for task in board.tasks:
        raw = any(r.score_kind == "return" for r in board.records if r.task == task)
        row = [task + (" ‡" if raw else "")]
        for agent in board.agents:
            finals = board.finals(task, agent)
            row.append(
                f"{_num(finals.mean())} ± {_num(finals.std())} ({finals.size})"
                if finals.size
                else "—"
            )
            if agent not in with_paper:
                continue
            paper = paper_of(task, agent)
            if not same_data:
                row.append("—" if paper is None else f"{paper.text()} ({paper.task})")
            elif paper is None:
                row += ["—", "—"]
            else:
                diff = _signed(finals.mean() - paper.mean) if finals.size else "—"
                row += [paper.text(), diff]
        rows.append(tuple(row))
    notes = [protocol_text(board)]
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
            seed=_stream(seed, board.name, domain, agent, "aggregate"),
        )
        parts = [
            stats.Interval(summary.point[i], summary.low[i], summary.high[i]) for i in range(3)
        ]
        rows.append(
            (
                agent + ("*" if len(mine) < len(tasks) else ""),
                str(len(mine)),
                str(sum(s.size for s in scores)),
                *(_interval(p) for p in parts),
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
        seed=_stream(seed, board.name, domain, agent, "improvement"),
    )
    return interval, len(shared)


def _improvement_cell(
    board: Board, agent: str, tasks: list[str], reps: int, seed: int, domain: str
) -> str:
    found = improvement(board, agent, tasks, reps, seed, domain)
    if found is None:
        return "—"
    interval, shared = found
    return f"{_interval(interval, 2)} ({shared} task{'s' if shared > 1 else ''})"


def throughput_table(board: Board) -> list[Block]:
    """Speed per agent: updates per second per seed and wall time per run (medians)."""
    rows = []
    for agent in board.agents:
        mine = [r for r in board.records if r.agent == agent]
        rows.append(
            (
                agent,
                str(len(mine)),
                _num(float(np.median([r.updates_per_s for r in mine])), 0),
                _num(float(np.median([r.wall_s for r in mine])) / 60.0),
            )
        )
    header = ("Agent", "Runs", "Updates/s per seed (median)", "Wall time per run, min (median)")
    note = (
        "Updates/s: gradient updates per second of one seed over the whole run, evaluation "
        "excluded (seeds trained together run in parallel). Wall time: the training command, "
        "all its seeds, evaluation included. "
    )
    return [Table(header, tuple(rows)), Text(note + protocol_text(board))]


# --- plots -----------------------------------------------------------------------------------


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
    return {a: f"C{i % 10}" for i, a in enumerate(agents)}


def curve_png(board: Board, task: str) -> bytes:
    """Mean ± std over seeds of each agent's evaluations against gradient steps."""
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors(board.agents)
    for agent in board.agents:
        runs = board.runs(task, agent)
        if not runs:
            continue
        steps = sorted(set.intersection(*(set(r.curve_steps) for r in runs)))
        curves = np.array(
            [
                [dict(zip(r.curve_steps, r.curve_scores, strict=True))[s] for s in steps]
                for r in runs
            ]
        )
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(steps, mean, color=colors[agent], label=f"{agent} ({len(runs)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=colors[agent], alpha=0.2)
    raw = any(r.score_kind == "return" for r in board.records if r.task == task)
    ax.set(title=task, xlabel="gradient steps", ylabel="return" if raw else "normalised score")
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
    colors = _colors(board.agents)
    for agent in agents:
        scores = [board.finals(t, agent) for t in tasks if board.finals(t, agent).size]
        profile = stats.bootstrap_ci(
            lambda s: stats.score_profile(s, taus),
            scores,
            reps=min(reps, stats.PROFILE_REPS),
            seed=_stream(seed, board.name, domain, agent, "profile"),
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
    colors = _colors(board.agents)
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


# --- the page --------------------------------------------------------------------------------


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def board_blocks(
    board: Board,
    reported: dict[tuple[str, str], Reported],
    reps: int,
    seed: int,
    images: dict[str, bytes],
) -> list[Block]:
    """The section of one board; its PNGs are added to `images` (relative path -> bytes)."""
    plots = f"plots/{board.name}"
    p = board.protocol
    blocks: list[Block] = [
        Heading(
            2,
            f"{SOURCE_TITLES.get(board.source, board.source + '/')}: {p['steps']:,} steps, "
            f"evaluation every {p['eval_every']:,}",
        ),
        Heading(3, "Per task"),
        *task_table(board, reported),
    ]
    curves = []
    for task in board.tasks:
        path = f"{plots}/curves/{_slug(task)}.png"
        images[path] = curve_png(board, task)
        curves.append((task, path))
    blocks.append(Links("Learning curves (mean ± std over seeds):", tuple(curves)))
    for domain in DOMAIN_ORDER:
        if not board.normalized_tasks(domain):
            continue
        blocks += [Heading(3, f"Domain: {domain}"), *aggregate_table(board, domain, reps, seed)]
        profile = f"{plots}/profile_{domain}.png"
        images[profile] = profile_png(board, domain, reps, seed)
        blocks.append(Image(profile, f"{board.source} {domain} performance profile"))
        blocks.append(
            Text(
                "Performance profile: fraction of runs scoring above tau, with 95 % "
                f"stratified-bootstrap bands ({min(reps, stats.PROFILE_REPS):,} repetitions, "
                "rliable's default for profiles). Probability of improvement over td3bc: the "
                "table's column, drawn."
            )
        )
        gain = improvement_png(board, domain, reps, seed)
        if gain is not None:
            images[f"{plots}/improvement_{domain}.png"] = gain
            blocks.append(
                Image(f"{plots}/improvement_{domain}.png", f"{domain} improvement over td3bc")
            )
    blocks += [Heading(3, "Speed"), *throughput_table(board)]
    return blocks


def build_leaderboard(
    store_path: Path,
    reported_csv: Path | None = None,
    out_dir: Path | None = None,
    *,
    bootstrap_reps: int = stats.REPS,
    seed: int = 0,
    behavior_versions: Mapping[str, int] | None = None,
) -> list[Path]:
    """Write LEADERBOARD.md, leaderboard.html and the PNGs; return their paths.

    `out_dir` defaults to the store's folder, `reported_csv` to benchmarks/reported.csv;
    `behavior_versions` (agent -> current version) leaves out runs of older versions.
    """
    if bootstrap_reps < 1:
        raise StoreError(f"--reps must be >= 1, got {bootstrap_reps}")
    store_path = Path(store_path)
    out_dir = store_path.parent if out_dir is None else Path(out_dir)
    records = read_store(store_path)
    if not records:
        raise StoreError(f"{store_path} holds no runs yet: run `make bench` (or offrl bench) first")
    reported = read_reported(default_reported_csv() if reported_csv is None else reported_csv)
    selection = select(records, behavior_versions)
    images: dict[str, bytes] = {}
    blocks: list[Block] = [
        Heading(1, "offrl leaderboard"),
        Text(
            f"Generated by offrl leaderboard from {store_path.name}: {len(records)} records, "
            f"{selection.superseded} replaced by re-runs of the same run, "
            f"{selection.old_behavior} left out because their agent's update changed since "
            "(an older behaviour version), "
            f"{selection.outdated} left out because their agent's config on that task, or the "
            "task's dataset, changed since. Every table covers one dataset source and one "
            "protocol; sources are never pooled."
        ),
        Text(METHOD),
    ]
    for board in selection.boards:
        blocks += board_blocks(board, reported, bootstrap_reps, seed, images)
    written = []
    for relative, data in sorted(images.items()):
        _write_bytes(out_dir / relative, data)
        written.append(out_dir / relative)
    for name, text in (
        ("LEADERBOARD.md", render_markdown(blocks)),
        ("leaderboard.html", render_html(blocks, "offrl leaderboard")),
    ):
        _write_bytes(out_dir / name, text.encode("utf-8"))
        written.append(out_dir / name)
    return written


# --- command line ----------------------------------------------------------------------------


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
