"""The page: every board's section, written as LEADERBOARD.md, leaderboard.html and PNGs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from benchmarks import stats
from benchmarks.dataset_summaries import DatasetSummary, read_summaries, record_summaries
from benchmarks.leaderboard.domains import DOMAIN_ORDER
from benchmarks.leaderboard.formatting import slug
from benchmarks.leaderboard.plots import curve_png, improvement_png, profile_png
from benchmarks.leaderboard.render import (
    Block,
    Heading,
    Image,
    Links,
    Text,
    render_html,
    render_markdown,
)
from benchmarks.leaderboard.reported import Reported, default_reported_csv, read_reported
from benchmarks.leaderboard.selection import SOURCE_TITLES, Board, Selection, select
from benchmarks.leaderboard.tables import aggregate_table, task_table, throughput_table
from benchmarks.store import StoreError, read_store
from offrl.run_files import atomic_write

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


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _peer_count(selection: Selection) -> str:
    """The header's sentence on peer runs; none for a store without them."""
    if not selection.peers_shown + selection.peers_left_out:
        return ""
    return (
        f" {selection.peers_shown} peer runs (another library's implementation, trained by offrl "
        "peer on the same data) shown in columns of their own and left out of every aggregate; "
        f"{selection.peers_left_out} more peer runs left out (an older adapter version or config, "
        "or another dataset than the row's)."
    )


def board_blocks(
    board: Board,
    reported: dict[tuple[str, str], Reported],
    datasets: Mapping[tuple[str, str], DatasetSummary],
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
        *task_table(board, reported, datasets),
    ]
    curves = []
    for task in board.tasks:
        path = f"{plots}/curves/{slug(task)}.png"
        images[path] = curve_png(board, task)
        curves.append((task, path))
    dashed = "; dashed: a peer implementation on the same data" if board.peers else ""
    blocks.append(Links(f"Learning curves (mean ± std over seeds{dashed}):", tuple(curves)))
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
    `behavior_versions` (agent -> current version) leaves out runs of older versions. Rows whose
    dataset `datasets.jsonl` (beside the store) does not summarise yet are added to it when that
    dataset is on disk.
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
    rows = {(t, b.dataset_checksum(t)) for b in selection.boards for t in b.tasks}
    try:
        record_summaries(store_path.parent, rows)
    except OSError as err:  # a read-only or full store folder: the board needs no new summary
        print(f"offrl leaderboard: no new dataset summaries ({err})", file=sys.stderr)
    datasets = read_summaries(store_path.parent)
    images: dict[str, bytes] = {}
    blocks: list[Block] = [
        Heading(1, "offrl leaderboard"),
        Text(
            f"Generated by offrl leaderboard from {store_path.name}: {len(records)} records, "
            f"{selection.superseded} replaced by re-runs of the same run, "
            f"{selection.old_behavior} left out because their agent's update changed since "
            "(an older behaviour version), "
            f"{selection.outdated} left out because their agent's config on that task, or the "
            f"task's dataset, changed since.{_peer_count(selection)} Every table covers one "
            "dataset source and one protocol; sources are never pooled."
        ),
        Text(METHOD),
    ]
    for board in selection.boards:
        blocks += board_blocks(board, reported, datasets, bootstrap_reps, seed, images)
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
