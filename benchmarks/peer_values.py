"""The critics' values of the d3rlpy peer runs beside ours: `python -m benchmarks.peer_values
[--results leaderboard/repro]`.

For every peer run folder with a checkpoint, d3rlpy's Q(s, a) at the data's actions (mean over
both critics and `peer_learner.VALUE_ROWS` fixed rows, and the largest row) at its last
checkpoint, beside the `q_mean` our run of the same agent, task, seed, protocol and dataset
recorded at the same step (the mean over its last training batches). A return near 1,000 steps
of reward bounds a healthy Q by about r / (1 - discount); a critic far above it has diverged,
which the scores alone show only once the policy follows it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import peer, peer_learner, store
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions


def last_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(step, model file) of a peer run folder's checkpoint, or None."""
    models = sorted(run_dir.glob("model-*.d3"), key=lambda p: int(p.stem.rpartition("-")[2]))
    return (int(models[-1].stem.rpartition("-")[2]), models[-1]) if models else None


def peer_values(agent: str, task: str, transitions: Transitions, model: Path) -> np.ndarray:
    """Q(s, a) of the checkpoint `model` at the `peer_learner.value_rows` of the task's data."""
    algo, transitions = peer_learner.learner(agent, task, transitions)
    algo.create_impl((transitions.observations.shape[1],), int(transitions.actions.shape[1]))
    algo.load_model(str(model))
    return algo.predict_value(*peer_learner.value_rows(transitions))


def latest_values(
    agent: str, task: str, transitions: Transitions, run_dir: Path
) -> tuple[int, np.ndarray] | None:
    """(step, Q values) at a peer run folder's latest checkpoint, or None without one. A running
    peer deletes a checkpoint once it has written the next, so a vanished file means look again."""
    while (found := last_checkpoint(run_dir)) is not None:
        step, model = found
        try:
            return step, peer_values(agent, task, transitions, model)
        except FileNotFoundError:
            continue
    return None


def our_q_mean(records: list[store.RunRecord], spec: dict, step: int) -> float | None:
    """Our run's recorded q_mean at `step` for the peer run `spec` (run.json's), if stored."""
    wanted = (spec["agent"], spec["task"], spec["seed"], spec["dataset_checksum"])
    for record in records:
        if (
            not record.is_peer
            and (record.agent, record.task, record.seed, record.dataset_checksum) == wanted
            and record.protocol_hash == store.protocol_hash(spec["protocol"])
        ):
            for line in (Path(record.run_dir) / "records.jsonl").read_text().splitlines():
                row = json.loads(line)
                if row["seed"] == spec["seed"] and row["step"] == step:
                    return float(row["losses"]["q_mean"])
    return None


def value_table(results: Path) -> list[str]:
    """Markdown rows: agent, task, seed, step, d3rlpy's Q mean (max), ours."""
    records = store.read_store(results / "runs.jsonl")
    rows, data = [], {}
    for manifest in sorted((results / "peers" / peer.LIBRARY).glob("*/*/*/*/*/run.json")):
        spec = json.loads(manifest.read_text())["spec"]
        if last_checkpoint(manifest.parent) is None:
            continue  # a peer run that has not reached its first evaluation
        if spec["task"] not in data:
            data[spec["task"]] = load_task(spec["task"]).transitions
        found = latest_values(spec["agent"], spec["task"], data[spec["task"]], manifest.parent)
        if found is None:
            continue
        step, values = found
        ours = our_q_mean(records, spec, step)
        rows.append(
            f"| {spec['agent']} | {spec['task']} | {spec['seed']} | {step:,} | "
            f"{values.mean():.1f} ({values.max():.1f}) | "
            f"{'—' if ours is None else f'{ours:.1f}'} |"
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("leaderboard/repro"))
    args = parser.parse_args(argv)
    print("| agent | task | seed | step | d3rlpy Q(s, a) mean (max) | offrl q_mean |")
    print("|---|---|---|---|---|---|")
    for row in value_table(args.results):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
