"""Which records make up which table: one board per dataset source and protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.leaderboard.domains import DOMAIN_ORDER, task_domain
from benchmarks.store import OURS, RunRecord, latest_records

REFERENCE_AGENT = "td3bc"  # probability of improvement is reported over TD3+BC
SOURCE_TITLES = {
    "d4rl": "D4RL dataset files (d4rl/)",
    "minari": "Minari datasets (minari/)",
    "offrl": "offrl-generated datasets (offrl/)",
}


@dataclass(frozen=True)
class Board:
    """The runs of one source under one protocol: one section of the page.

    `records` are offrl's runs, the only ones aggregated; `peers` are peer implementations' runs
    (RunRecord.is_peer) on the same rows' datasets, shown beside them and never pooled with them.
    """

    source: str
    protocol: dict[str, int]
    protocol_hash: str
    records: tuple[RunRecord, ...]
    peers: tuple[RunRecord, ...]

    @property
    def name(self) -> str:
        return f"{self.source}-{self.protocol_hash[:8]}"

    @property
    def tasks(self) -> list[str]:
        """Every row, ours or a peer's: grouped by domain (locomotion, maze, antmaze, other),
        then by name."""
        return _by_domain({r.task for r in (*self.records, *self.peers)})

    @property
    def agents(self) -> list[str]:
        """The agents offrl ran on this board: the ones aggregated."""
        return _agent_order({r.agent for r in self.records})

    @property
    def shown_agents(self) -> list[str]:
        """Every agent with a column, ours or only a peer's: the per-task table and the colours."""
        return _agent_order({r.agent for r in (*self.records, *self.peers)})

    def implementations(self, agent: str) -> list[str]:
        """The peer libraries that ran `agent` on this board."""
        return sorted({r.implementation for r in self.peers if r.agent == agent})

    def runs(self, task: str, agent: str, implementation: str = OURS) -> list[RunRecord]:
        """An agent's runs of a task by one implementation (ours by default), in seed order."""
        pool = self.records if implementation == OURS else self.peers
        what = (task, agent, implementation)
        return sorted((r for r in pool if (r.task, r.agent, r.implementation) == what), key=_seed)

    def finals(self, task: str, agent: str, implementation: str = OURS) -> np.ndarray:
        runs = self.runs(task, agent, implementation)
        return np.array([r.final for r in runs], dtype=np.float64)

    def dataset_checksum(self, task: str) -> str:
        """The row's dataset: every run shown on it trained on this one."""
        return next(r.dataset_checksum for r in (*self.records, *self.peers) if r.task == task)

    def raw_returns(self, task: str) -> bool:
        """Whether a task is scored in raw returns (no reference scores), by anyone's runs."""
        return any(r.score_kind == "return" for r in (*self.records, *self.peers) if r.task == task)

    def normalized_tasks(self, domain: str) -> list[str]:
        """The domain's tasks we ran, scored in normalised scores: the only ones aggregated."""
        return [
            t
            for t in _by_domain({r.task for r in self.records})
            if task_domain(t) == domain
            and all(r.score_kind == "normalized_score" for r in self.records if r.task == t)
        ]


def _seed(record: RunRecord) -> int:
    return record.seed


def _by_domain(tasks: set[str]) -> list[str]:
    """Grouped by domain (locomotion, maze, antmaze, other), then by name."""
    return sorted(tasks, key=lambda t: (DOMAIN_ORDER.index(task_domain(t)), t))


def _agent_order(agents: set[str]) -> list[str]:
    """The reference agent first, then by name."""
    return sorted(agents, key=lambda a: (a != REFERENCE_AGENT, a))


@dataclass(frozen=True)
class Selection:
    boards: list[Board]
    superseded: int  # records replaced by a later record of the same run key
    outdated: int  # records of an (agent, task) whose config, or of a task whose dataset, changed
    old_behavior: int  # records trained by an older version of their agent's update
    peers_shown: int  # peer records on the boards, beside ours
    peers_left_out: int  # peer records of an older adapter or config, or of other data


def select(
    records: Sequence[RunRecord], behavior_versions: Mapping[str, int] | None = None
) -> Selection:
    """Latest record per run key, none trained by another behaviour version than the agent's
    current one (`behavior_versions`: agent -> version; agents not named keep every version);
    per (protocol, agent, task) only the latest config, and per (protocol, task) only the latest
    dataset checksum, for every agent: agents on one row always trained on the same data.

    Peer records go to their boards' `peers`, never among ours: per (library, agent, task) only
    the newest adapter version (the behaviour versions are offrl's, not the adapter's), per
    (protocol, library, agent, task) the latest config, and only on the dataset of the row,
    which our records decide (the peers' latest where only peers ran the task)."""
    versions = behavior_versions or {}
    ours = [r for r in records if not r.is_peer]
    current = [r for r in ours if versions.get(r.agent, r.behavior_version) == r.behavior_version]
    peers = _newest_adapter([r for r in records if r.is_peer])
    # file order: the last appended dataset wins; ours decide every row they are on
    dataset = {**_latest_datasets(peers), **_latest_datasets(current)}
    kept, kept_peers = _on_latest_config(current, dataset), _on_latest_config(peers, dataset)
    groups: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]] = {}
    for r in kept:
        groups.setdefault((r.source, r.protocol_hash), ([], []))[0].append(r)
    for r in kept_peers:
        groups.setdefault((r.source, r.protocol_hash), ([], []))[1].append(r)
    boards = [
        Board(source, (rs or ps)[0].protocol, phash, tuple(rs), tuple(ps))
        for (source, phash), (rs, ps) in groups.items()
    ]
    latest_ours, latest_current = len({r.key for r in ours}), len({r.key for r in current})
    return Selection(
        sorted(boards, key=_board_order),
        superseded=len(records) - len({r.key for r in records}),
        outdated=latest_current - len(kept),
        old_behavior=latest_ours - latest_current,
        peers_shown=len(kept_peers),
        peers_left_out=len({r.key for r in records if r.is_peer}) - len(kept_peers),
    )


def _newest_adapter(peers: Sequence[RunRecord]) -> list[RunRecord]:
    """The peer records of the newest adapter version of their (library, agent, task)."""
    newest: dict[tuple[str, str, str], int] = {}
    for r in peers:
        what = (r.implementation, r.agent, r.task)
        newest[what] = max(newest.get(what, r.behavior_version), r.behavior_version)
    return [r for r in peers if newest[(r.implementation, r.agent, r.task)] == r.behavior_version]


def _latest_datasets(records: Sequence[RunRecord]) -> dict[tuple[str, str], str]:
    """(protocol, task) -> the dataset checksum of the last appended record."""
    return {(r.protocol_hash, r.task): r.dataset_checksum for r in records}


def _on_latest_config(
    records: Sequence[RunRecord], dataset: Mapping[tuple[str, str], str]
) -> list[RunRecord]:
    """The latest record per run key, if it has the last appended config of its (protocol,
    implementation, agent, task) and the row's dataset."""
    config = {(r.protocol_hash, r.implementation, r.agent, r.task): r.config_hash for r in records}
    return [
        r
        for r in latest_records(records)
        if config[(r.protocol_hash, r.implementation, r.agent, r.task)] == r.config_hash
        and dataset[(r.protocol_hash, r.task)] == r.dataset_checksum
    ]


def _board_order(board: Board) -> tuple:
    """Sources in a fixed order, then the longest protocol first, then the hash."""
    order = list(SOURCE_TITLES)
    rank = order.index(board.source) if board.source in order else len(order)
    return (rank, board.source, -board.protocol["steps"], board.protocol_hash)
