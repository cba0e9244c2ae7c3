"""The results store: one JSON line per finished (agent, task, seed) run, append-only.

Any number of bench workers append to the same file at once. Each append takes an exclusive
`fcntl.flock` on the store, writes whole lines, flushes and fsyncs before unlocking, so lines
never interleave and none is lost; readers take a shared lock, so they never see half a line.
(flock is per host: do not share one store between machines over NFS.) A line that does not
parse is reported with its file and line number rather than skipped, so a number never silently
disappears from the leaderboard.

A run is identified by its `RunKey`: agent, the agent's behaviour version, task, seed, the hash of
its config, the hash of its protocol (steps, evaluation interval, episodes), the checksum of the
dataset it trained on and the implementation that trained it (offrl, or a peer library such as
d3rlpy trained on the same data by `benchmarks.peer`). The protocol is part of the key so that a
short smoke run never stands in for the full benchmark of the same config; the checksum, so that a
run on a remade dataset never stands in for one on the current data; the behaviour version, so that
a run of an agent whose update has changed since never stands in for one of the current agent.
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from offrl.agent import canonical_config
from offrl.errors import OffrlError
from offrl.run_manifest import RunManifest, read_run_manifest

SCHEMA = 4
# Schema 1 records predate behaviour versions: every agent was then at its first, 1.
SCHEMA_1_BEHAVIOR_VERSION = 1
# Schema 1 and 2 records predate peer implementations: offrl trained them all.
OURS = "offrl"
FINAL_WINDOW = 10  # TD3+BC's rule: the final score is the mean of the last 10 evaluations
DEFAULT_STORE = Path("results/runs.jsonl")
PROTOCOL_FIELDS = ("steps", "eval_every", "eval_episodes")
SCORE_KINDS = ("normalized_score", "return")


class StoreError(OffrlError):
    """A results store, run folder or reported-scores file: missing, corrupt or unfinished."""


class RunKey(NamedTuple):
    """What makes two runs the same experiment: re-running a stored key is skipped."""

    agent: str
    behavior_version: int
    task: str
    seed: int
    config_hash: str
    protocol_hash: str
    dataset_checksum: str
    implementation: str = OURS


def _plain(value: Any) -> Any:
    """JSON-compatible form of a dataclass or mapping (tuples become lists, as in run.json)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value))


def _sha256(value: Any) -> str:
    """Hash of the canonical JSON: sorted keys, no spaces, so equal values hash equally."""
    text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: Any) -> str:
    """sha256 of an agent config's canonical form (`offrl.agent.canonical_config`): a dataclass
    and its run.json dict give the same hash, and a field added since at its default none."""
    return _sha256(canonical_config(config))


def protocol_of(protocol: Any) -> dict[str, int]:
    """The protocol fields that change results, from `offrl.train.Protocol` or a mapping."""
    plain = _plain(protocol)
    missing = [name for name in PROTOCOL_FIELDS if name not in plain]
    if missing:
        raise StoreError(f"protocol {plain} lacks {', '.join(missing)}")
    return {name: int(plain[name]) for name in PROTOCOL_FIELDS}


def protocol_hash(protocol: Any) -> str:
    """sha256 of `protocol_of(protocol)`."""
    return _sha256(protocol_of(protocol))


def task_source(task: str) -> str:
    """The dataset source a task name starts with: d4rl, minari or offrl."""
    return task.partition("/")[0]


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One seed of one finished run: what was trained, how, and how well it scored.

    Scores (`curve_scores`, `final`, `last`, `best`) are D4RL-normalised scores when
    `score_kind` is "normalized_score", raw episode returns when it is "return" (a task without
    reference scores). `wall_s` is the run's wall time summed over the invocations that trained
    it (its records' last `wall_s`), shared by all `run_seeds` trained together (vmapped) and, in
    a grouped bench, by the runs of the other datasets trained in the same program. Where
    `wall_whole_run` is False (schema 1 to 3, or a run resumed from records of an offrl before
    their `wall_s`) it is the wall time of the invocation that finished the run: a lower bound
    when that invocation resumed it; `updates_per_s` is gradient updates
    per second per seed over the whole run, evaluation excluded. `behavior_version` is the
    agent's BEHAVIOR_VERSION when it trained (for a peer, its adapter's version).
    `implementation` is "offrl", or the peer library that trained the run on the same data.
    """

    agent: str
    behavior_version: int
    task: str
    seed: int
    dataset_checksum: str
    config: dict[str, Any]
    config_hash: str
    protocol: dict[str, int]
    protocol_hash: str
    git_commit: str | None
    offrl_version: str
    score_kind: str
    curve_steps: list[int]
    curve_scores: list[float]
    curve_returns: list[float]
    final: float
    final_window: int
    last: float
    best: float
    best_step: int
    wall_s: float
    updates_per_s: float
    run_seeds: list[int]
    run_dir: str
    finished_at: str
    implementation: str = OURS
    wall_whole_run: bool = True
    schema: int = SCHEMA

    @property
    def key(self) -> RunKey:
        return RunKey(
            self.agent,
            self.behavior_version,
            self.task,
            self.seed,
            self.config_hash,
            self.protocol_hash,
            self.dataset_checksum,
            self.implementation,
        )

    @property
    def is_peer(self) -> bool:
        return self.implementation != OURS

    @property
    def source(self) -> str:
        return task_source(self.task)

    def to_line(self) -> str:
        """The record as one JSON line (sorted keys, NaN refused)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> RunRecord:
        """A record from its JSON object; `where` names the file and line in errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        if data.get("schema") == 1 and "behavior_version" not in data:
            data = {**data, "behavior_version": SCHEMA_1_BEHAVIOR_VERSION, "schema": 2}
        if data.get("schema") == 2 and "implementation" not in data:
            data = {**data, "implementation": OURS, "schema": 3}
        # Schema 1 to 3 records predate whole-run wall times: each holds its finishing invocation's.
        if data.get("schema") == 3 and "wall_whole_run" not in data:
            data = {**data, "wall_whole_run": False, "schema": SCHEMA}
        if data.get("schema") != SCHEMA:
            raise StoreError(
                f"{where}: record schema {data.get('schema')!r}, this offrl reads 1 to {SCHEMA}"
            )
        missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
        if missing or unknown:
            raise StoreError(f"{where}: not a run record (missing {missing}, unknown {unknown})")
        if data["score_kind"] not in SCORE_KINDS:
            raise StoreError(
                f"{where}: score_kind {data['score_kind']!r} is not one of {SCORE_KINDS}"
            )
        return cls(**data)


def score_summary(
    steps: Sequence[int], scores: Sequence[float], window: int = FINAL_WINDOW
) -> dict[str, Any]:
    """final (mean of the last `window` evaluations, fewer if the run has fewer), last, best."""
    if not scores:
        raise ValueError("no evaluations to summarise")
    tail = scores[-window:]
    best = int(np.argmax(scores))
    return {
        "final": float(np.mean(tail)),
        "final_window": len(tail),
        "last": float(scores[-1]),
        "best": float(scores[best]),
        "best_step": int(steps[best]),
    }


def read_jsonl(
    path: Path, remedy: str = "Delete that line; the bench re-runs the missing run."
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line, read under a shared lock.

    A line that is not a JSON object raises StoreError naming the file, the line and `remedy`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            lines = f.read().decode(errors="replace").split("\n")
    except FileNotFoundError as err:
        raise StoreError(f"{path} does not exist") from err
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise StoreError(
                f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno}): "
                f"a write torn by a crash? {remedy}"
            ) from err
        if not isinstance(row, dict):
            raise StoreError(f"{path}, line {number}: a JSON {type(row).__name__}, not a record")
        rows.append((number, row))
    return rows


def append(store: Path, records: Iterable[RunRecord]) -> None:
    """Append records as whole lines under an exclusive lock: safe from many processes at once."""
    append_lines(store, [record.to_line() for record in records])


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append whole lines (each ending in a newline) under an exclusive lock."""
    data = "".join(lines).encode()
    if not data:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        # A line torn by an earlier crash stays alone on its line instead of swallowing ours.
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                data = b"\n" + data
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_store(store: Path) -> list[RunRecord]:
    """All records in file order; a missing file or a corrupt line raises StoreError."""
    return [RunRecord.from_dict(row, f"{store}, line {n}") for n, row in read_jsonl(store)]


def finished_keys(store: Path) -> set[RunKey]:
    """Keys of every stored run; an absent store (a first bench) has none."""
    return {record.key for record in read_store(store)} if Path(store).exists() else set()


def latest_records(records: Iterable[RunRecord]) -> list[RunRecord]:
    """One record per key, the last appended (a forced re-run replaces the earlier one)."""
    return list({record.key: record for record in records}.values())


def _seed_evaluations(run_dir: Path, seed: int, steps: int) -> list[dict[str, Any]]:
    """The evaluation records of one seed of a finished run, in step order."""
    path = run_dir / "records.jsonl"
    if not path.exists():
        raise StoreError(f"{run_dir} holds no records.jsonl: the run has not evaluated yet")
    rows = sorted(
        (r for _, r in read_jsonl(path) if r.get("seed") == seed), key=lambda r: r["step"]
    )
    rows = [r for r in rows if "return" in r]
    if not rows:
        raise StoreError(f"{path} holds no evaluation of seed {seed}")
    found = [r["step"] for r in rows]
    if len(set(found)) != len(found):
        raise StoreError(f"{path} evaluates seed {seed} twice at one step")
    if found[-1] != steps:
        raise StoreError(
            f"the run in {run_dir} is not finished: seed {seed} was last evaluated at step "
            f"{found[-1]} of {steps}; resume it with the same `offrl train --out {run_dir}`"
        )
    return rows


def _score_kind(rows: list[dict[str, Any]], where: Path) -> str:
    """Normalised scores when every evaluation has one, returns when none has, else an error."""
    has_score = {r.get("normalized_score") is not None for r in rows}
    if has_score == {True}:
        return "normalized_score"
    if has_score == {False}:
        return "return"
    raise StoreError(f"{where}: some evaluations have a normalised score and some do not")


def _updates_per_s(rows: list[dict[str, Any]]) -> float:
    """Whole-run throughput: all updates over the summed time of the chunks between evaluations."""
    steps = np.array([0] + [r["step"] for r in rows], dtype=np.float64)
    rates = np.array([r["updates_per_s"] for r in rows], dtype=np.float64)
    return float(steps[-1] / np.sum(np.diff(steps) / rates))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _read_manifest(run_dir: Path) -> RunManifest:
    manifest = read_run_manifest(run_dir)
    if manifest is None:
        raise StoreError(f"{run_dir} is not an offrl run folder (no run.json)")
    return manifest


def record_from_run_dir(
    run_dir: Path, seed: int, wall_s: float, finished_at: str | None = None
) -> RunRecord:
    """The store record of one seed of a finished `offrl train` run folder.

    `wall_s` is the wall time the caller measured around `fit`, used when the records lack the
    run's own; `finished_at` (ISO 8601) defaults to now, in UTC.
    """
    run_dir = Path(run_dir)
    manifest = _read_manifest(run_dir)
    if manifest.task is None:
        raise StoreError(f"{run_dir} was trained without a task, so it has no scores to store")
    if seed not in manifest.seeds:
        raise StoreError(f"{run_dir} trained seeds {list(manifest.seeds)}, not seed {seed}")
    rows = _seed_evaluations(run_dir, seed, manifest.steps)
    kind = _score_kind(rows, run_dir / "records.jsonl")
    steps = [int(r["step"]) for r in rows]
    scores = [float(r[kind]) for r in rows]
    protocol = protocol_of({name: getattr(manifest, name) for name in PROTOCOL_FIELDS})
    return RunRecord(
        agent=manifest.agent,
        behavior_version=manifest.version,
        task=manifest.task,
        seed=int(seed),
        dataset_checksum=manifest.checksum,
        config=manifest.config,
        config_hash=config_hash(manifest.config),
        protocol=protocol,
        protocol_hash=protocol_hash(protocol),
        git_commit=manifest.git_commit,
        offrl_version=manifest.offrl_version,
        score_kind=kind,
        curve_steps=steps,
        curve_scores=scores,
        curve_returns=[float(r["return"]) for r in rows],
        **score_summary(steps, scores),
        wall_s=float(rows[-1].get("wall_s", wall_s)),
        wall_whole_run="wall_s" in rows[-1],
        updates_per_s=_updates_per_s(rows),
        run_seeds=[int(s) for s in manifest.seeds],
        run_dir=str(run_dir),
        finished_at=finished_at or _now(),
    )


def records_from_run_dir(
    run_dir: Path, wall_s: float, finished_at: str | None = None
) -> list[RunRecord]:
    """The records of every seed of a finished run folder, in seed order."""
    finished_at = finished_at or _now()
    seeds = _read_manifest(Path(run_dir)).seeds
    return [record_from_run_dir(run_dir, seed, wall_s, finished_at) for seed in seeds]
