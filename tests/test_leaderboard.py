"""The leaderboard: hand-checked numbers, sources never pooled, the protocol under every table,
byte-identical regeneration, and one clear error per bad store."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from agents import AGENTS
from benchmarks import stats
from benchmarks.leaderboard import (
    build_leaderboard,
    d4rl_counterpart,
    default_reported_csv,
    main,
    read_reported,
    select,
    task_domain,
)
from benchmarks.store import (
    RunRecord,
    append,
    config_hash,
    protocol_hash,
    read_store,
    score_summary,
)
from offrl.agent import behavior_version
from offrl.data.registry import load_task
from offrl.data.transitions import episode_returns

FULL = {"steps": 1_000_000, "eval_every": 5_000, "eval_episodes": 10}
SMOKE = {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 2}
REPS = 300


def make_record(
    agent: str,
    task: str,
    seed: int,
    final: float,
    protocol: dict = FULL,
    config: dict | None = None,
    kind: str = "normalized_score",
) -> RunRecord:
    """A record whose last ten evaluations all equal `final`, after a ramp."""
    config = config or {"alpha": 2.5}
    steps = [protocol["eval_every"] * (i + 1) for i in range(12)]
    scores = [0.0, final / 2] + [final] * 10
    return RunRecord(
        agent=agent,
        behavior_version=1,
        task=task,
        seed=seed,
        dataset_checksum="c" * 64,
        config=config,
        config_hash=config_hash(config),
        protocol=protocol,
        protocol_hash=protocol_hash(protocol),
        git_commit="0123456789abcdef",
        offrl_version="0.1.0",
        score_kind=kind,
        curve_steps=steps,
        curve_scores=scores,
        curve_returns=[s * 30 for s in scores],
        **score_summary(steps, scores),
        wall_s=600.0,
        updates_per_s=2000.0,
        run_seeds=[0, 1, 2],
        run_dir="runs/x",
        finished_at="2026-01-01T00:00:00+00:00",
    )


# Hand-picked finals: (agent, task) -> one score per seed.
FINALS = {
    ("td3bc", "d4rl/hopper-medium-v2"): [58.0, 60.0, 62.0],
    ("td3bc", "d4rl/walker2d-medium-v2"): [80.0, 84.0, 88.0],
    ("prdc", "d4rl/hopper-medium-v2"): [99.0, 101.0, 103.0],
    ("prdc", "d4rl/walker2d-medium-v2"): [85.0, 86.0, 87.0],
    ("prdc", "d4rl/antmaze-umaze-v2"): [90.0, 95.0, 100.0],
    ("td3bc", "offrl/hopper/medium-v0"): [10.0, 20.0, 30.0],
    ("prdc", "offrl/hopper/medium-v0"): [40.0, 50.0, 60.0],
}


def make_peer(agent: str, task: str, seed: int, final: float, **changes) -> RunRecord:
    """The same run trained by d3rlpy through `offrl peer`: one seed per run, slower."""
    record = make_record(agent, task, seed, final)
    peer = {"implementation": "d3rlpy", "run_seeds": [seed], "updates_per_s": 300.0}
    return dataclasses.replace(record, **(peer | changes))


# Peer finals, far from ours so that a peer score leaking into our columns would show.
PEER_FINALS = {
    ("td3bc", "offrl/hopper/medium-v0"): [15.0, 25.0, 35.0],
    ("prdc", "offrl/hopper/medium-v0"): [45.0, 55.0],
    ("prdc", "offrl/walker2d/medium-v0"): [70.0, 71.0, 72.0],  # a task only the peer ran
}


def our_records() -> list[RunRecord]:
    records = [
        make_record(agent, task, seed, final)
        for (agent, task), finals in FINALS.items()
        for seed, final in enumerate(finals)
    ]
    records.append(make_record("td3bc", "minari/local/hopper-random-v0", 0, 1234.5, kind="return"))
    records += [make_record("td3bc", "d4rl/hopper-medium-v2", s, 1.0, SMOKE) for s in range(2)]
    return records


def peer_records() -> list[RunRecord]:
    """PEER_FINALS, and peers on another dataset than the row's, which never show."""
    records = [
        make_peer(agent, task, seed, final)
        for (agent, task), finals in PEER_FINALS.items()
        for seed, final in enumerate(finals)
    ]
    # One run stored before whole-run wall times: its 5 min only bound the run's from below.
    records[-1] = dataclasses.replace(records[-1], wall_s=300.0, wall_whole_run=False)
    return records + [
        make_peer("td3bc", "d4rl/hopper-medium-v2", s, 500.0, dataset_checksum="f" * 64)
        for s in range(3)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "runs.jsonl"
    append(path, our_records())
    return path


@pytest.fixture(scope="module")
def peer_store(tmp_path_factory) -> Path:
    """The store above with peer runs appended, in between ours and after them."""
    path = tmp_path_factory.mktemp("peer_store") / "runs.jsonl"
    ours, peers = our_records(), peer_records()
    append(path, peers[:4] + ours + peers[4:])
    return path


@pytest.fixture(scope="module")
def page(store, tmp_path_factory) -> str:
    """LEADERBOARD.md built once for the tests that only read it."""
    out = tmp_path_factory.mktemp("page")
    build_leaderboard(store, out_dir=out, bootstrap_reps=REPS, seed=3)
    return (out / "LEADERBOARD.md").read_text()


@pytest.fixture(scope="module")
def peer_page(peer_store, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("peer_page")
    build_leaderboard(peer_store, out_dir=out, bootstrap_reps=REPS, seed=3)
    return (out / "LEADERBOARD.md").read_text()


def section(md: str, heading: str) -> str:
    """The text from a heading to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = md.index(heading)
    rest = md[start + len(heading) :]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)]
    return heading + (rest[: ends[0]] if ends else rest)


def table_rows(text: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every body row of the markdown tables in `text`."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_per_task_cells_are_mean_std_n_beside_the_paper_and_the_difference(page):
    md = page
    d4rl = section(md, "## D4RL dataset files (d4rl/): 1,000,000 steps")
    header = next(line for line in d4rl.splitlines() if line.startswith("| Task"))
    assert header == ("| Task | td3bc | td3bc paper | td3bc Δ | prdc | prdc paper | prdc Δ |")
    rows = table_rows(section(d4rl, "### Per task"))
    # td3bc hopper: mean 60, population std sqrt(8/3) = 1.63; paper 59.3 ± 4.2 -> +0.7.
    assert rows["d4rl/hopper-medium-v2"] == [
        "60.0 ± 1.6 (3)", "59.3 ± 4.2", "+0.7", "101.0 ± 1.6 (3)", "100.3 ± 0.2", "+0.7",
    ]  # fmt: skip
    assert rows["d4rl/walker2d-medium-v2"][:3] == ["84.0 ± 3.3 (3)", "83.7 ± 2.1", "+0.3"]
    # PRDC's antmaze: paper 98.8 ± 1.0, ours 95 -> -3.8; td3bc never ran it.
    assert rows["d4rl/antmaze-umaze-v2"] == ["—", "—", "—", "95.0 ± 4.1 (3)", "98.8 ± 1.0", "-3.8"]
    # Generated data: the D4RL paper number only for orientation, no difference column.
    offrl = section(md, "## offrl-generated datasets (offrl/)")
    assert table_rows(section(offrl, "### Per task"))["offrl/hopper/medium-v0"] == [
        "20.0 ± 8.2 (3)", "59.3 ± 4.2 (d4rl/hopper-medium-v2)",
        "50.0 ± 8.2 (3)", "100.3 ± 0.2 (d4rl/hopper-medium-v2)",
    ]  # fmt: skip
    # A raw-return task is marked, shown without a paper number and never aggregated.
    minari = section(md, "## Minari datasets (minari/)")
    assert table_rows(minari)["minari/local/hopper-random-v0 ‡"] == ["1234.5 ± 0.0 (1)"]
    assert "### Domain" not in minari


def test_domain_aggregates_never_pool_sources_or_protocols(page):
    md = page
    d4rl = section(md, "## D4RL dataset files (d4rl/): 1,000,000 steps")
    locomotion = table_rows(section(d4rl, "### Domain: locomotion"))
    td3bc = [
        np.array(FINALS[("td3bc", t)]) for t in ("d4rl/hopper-medium-v2", "d4rl/walker2d-medium-v2")
    ]
    prdc = [
        np.array(FINALS[("prdc", t)]) for t in ("d4rl/hopper-medium-v2", "d4rl/walker2d-medium-v2")
    ]
    # Hand: td3bc mean (60 + 84) / 2 = 72; IQM of [58 60 62 80 84 88] drops 58, 88 -> 71.5;
    # gap 100 - 72 = 28. Only the d4rl runs of the full protocol count (not offrl's, not smoke).
    assert locomotion["td3bc"][:2] == ["2", "6"]
    assert [cell.split(" [")[0] for cell in locomotion["td3bc"][2:5]] == ["72.0", "71.5", "28.0"]
    assert locomotion["td3bc"][5] == "—"
    # PRDC beats td3bc in every hopper pair, and in walker2d 85 < 88, 86 < 88, 87 < 88,
    # 85 > 80, 84; 86 > 80, 84; 87 > 80, 84 -> 6/9: P = (1 + 2/3) / 2 = 0.83.
    assert locomotion["prdc"][5].startswith("0.83 [")
    assert np.isclose(stats.probability_of_improvement(prdc, td3bc), 5 / 6)
    # The printed intervals are stats.bootstrap_ci's (same reps), so hand-checked stats apply.
    low, high = map(float, re.search(r"\[(.*), (.*)\]", locomotion["td3bc"][3]).groups())
    assert low <= 71.5 <= high and low >= 58.0 and high <= 88.0
    antmaze = table_rows(section(d4rl, "### Domain: antmaze"))
    assert list(antmaze) == ["Agent", "prdc"]
    assert antmaze["prdc"][2].startswith("95.0 [")
    offrl = section(md, "## offrl-generated datasets (offrl/)")
    assert table_rows(section(offrl, "### Domain: locomotion"))["td3bc"][2].startswith(
        "20.0 ["
    )  # its own source only
    smoke = section(md, "## D4RL dataset files (d4rl/): 2,000 steps")
    assert table_rows(section(smoke, "### Per task"))["d4rl/hopper-medium-v2"][0] == (
        "1.0 ± 0.0 (2)"
    )


def test_the_protocol_is_printed_under_every_table(page):
    blocks = page.split("\n\n")
    tables = [i for i, block in enumerate(blocks) if block.startswith("| ")]
    assert len(tables) >= 8
    for i in tables:
        assert "Protocol: " in blocks[i + 1]
    smoke = next(blocks[i + 1] for i in tables if "2,000 gradient steps" in blocks[i + 1])
    assert "evaluation every 1,000 steps, 2 episodes" in smoke
    assert "final score = mean of the last 10 evaluations" in smoke


def test_regeneration_is_byte_identical(store, tmp_path):
    first = build_leaderboard(store, out_dir=tmp_path / "a", bootstrap_reps=REPS, seed=1)
    second = build_leaderboard(store, out_dir=tmp_path / "b", bootstrap_reps=REPS, seed=1)
    relative = [p.relative_to(tmp_path / "a") for p in first]
    assert relative == [p.relative_to(tmp_path / "b") for p in second]
    for name in ("LEADERBOARD.md", "leaderboard.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    pngs = [p for p in relative if p.suffix == ".png"]
    assert any(p.name == "profile_locomotion.png" for p in pngs)
    assert any(p.name == "improvement_locomotion.png" for p in pngs)
    assert any(p.parent.name == "curves" for p in pngs)
    for png in pngs:  # matplotlib's Agg output, without the version tag, is deterministic too
        assert (tmp_path / "a" / png).read_bytes() == (tmp_path / "b" / png).read_bytes()
    html = (tmp_path / "a" / "leaderboard.html").read_text()
    assert "<script" not in html and "http" not in html  # self-contained
    for png in pngs:  # every plot is shown or linked, by its path beside the page
        assert f'"{png.as_posix()}"' in html


def test_the_published_board_is_what_its_records_make(tmp_path):
    published = Path(__file__).resolve().parents[1] / "leaderboard"
    versions = {name: behavior_version(agent) for name, agent in AGENTS.items()}
    build_leaderboard(published / "runs.jsonl", out_dir=tmp_path, behavior_versions=versions)

    for name in ("LEADERBOARD.md", "leaderboard.html"):
        assert (tmp_path / name).read_text() == (published / name).read_text(), (
            f"leaderboard/{name} is stale: regenerate it with "
            "`offrl leaderboard --store leaderboard/runs.jsonl`"
        )


def test_the_published_board_shows_every_agent_at_its_current_behaviour_version():
    """A2PR's version-1 runs (its summed BC weight) were re-run: every task of the published
    board has all of its seeds from each agent's current update, none from an older one."""
    published = Path(__file__).resolve().parents[1] / "leaderboard" / "runs.jsonl"
    versions = {name: behavior_version(agent) for name, agent in AGENTS.items()}
    selection = select(read_store(published), versions)
    for board in selection.boards:
        for task in board.tasks:
            for agent in AGENTS:
                runs = board.runs(task, agent)
                assert len(runs) == 3, (board.name, task, agent, len(runs))
                assert {r.behavior_version for r in runs} == {versions[agent]}


def test_reruns_replace_and_a_changed_config_supersedes(tmp_path):
    old = make_record("td3bc", "d4rl/hopper-medium-v2", 0, 10.0)
    again = make_record("td3bc", "d4rl/hopper-medium-v2", 0, 20.0)
    other_seed = make_record("td3bc", "d4rl/hopper-medium-v2", 1, 30.0)
    retuned = make_record("td3bc", "d4rl/hopper-medium-v2", 2, 40.0, config={"alpha": 1.0})
    selection = select([old, again, other_seed, retuned])
    (board,) = selection.boards
    assert [r.final for r in board.records] == [40.0]
    assert (selection.superseded, selection.outdated) == (1, 2)
    assert [r.final for r in select([old, again, other_seed]).boards[0].records] == [20.0, 30.0]


def test_runs_on_a_remade_dataset_supersede_those_on_the_old_one():
    old = make_record("td3bc", "offrl/hopper/medium-replay-v0", 0, 10.0)
    other_seed = make_record("td3bc", "offrl/hopper/medium-replay-v0", 1, 30.0)
    remade = dataclasses.replace(old, dataset_checksum="f" * 64, final=50.0)
    assert remade.key != old.key
    selection = select([old, other_seed, remade])
    (board,) = selection.boards
    assert [r.final for r in board.records] == [50.0]
    assert (selection.superseded, selection.outdated) == (0, 2)
    # Another agent's runs on the old data leave the row too: one row, one dataset.
    prdc_old = make_record("prdc", "offrl/hopper/medium-replay-v0", 0, 70.0)
    selection = select([prdc_old, old, remade])
    assert [(r.agent, r.final) for r in selection.boards[0].records] == [("td3bc", 50.0)]
    assert selection.outdated == 2


def test_runs_of_an_older_behaviour_version_are_left_out():
    """A2PR's update changed (version 2): its version-1 runs leave the board, with their count,
    even when no version-2 run has been stored yet; an agent the caller does not name keeps its."""
    old = make_record("a2pr", "offrl/hopper/medium-v0", 0, 10.0)
    new = dataclasses.replace(
        make_record("a2pr", "offrl/hopper/medium-v0", 0, 50.0), behavior_version=2
    )
    mine = make_record("l1bc", "offrl/hopper/medium-v0", 0, 5.0)
    assert new.key != old.key
    selection = select([old, new, mine], {"a2pr": 2})
    (board,) = selection.boards
    assert sorted((r.agent, r.final) for r in board.records) == [("a2pr", 50.0), ("l1bc", 5.0)]
    assert (selection.old_behavior, selection.outdated, selection.superseded) == (1, 0, 0)
    only_old = select([old], {"a2pr": 2})
    assert (only_old.boards, only_old.old_behavior) == ([], 1)
    # A newer version's config, appended before an old-version rerun, still decides "current".
    retuned_old = dataclasses.replace(old, config={"alpha": 9.0}, config_hash="9" * 64)
    assert [r.final for r in select([new, retuned_old], {"a2pr": 2}).boards[0].records] == [50.0]


def test_domains_and_d4rl_counterparts():
    assert task_domain("d4rl/hopper-medium-v2") == "locomotion"
    assert task_domain("d4rl/ant-medium-v2") == "locomotion"
    assert task_domain("d4rl/antmaze-umaze-diverse-v2") == "antmaze"
    assert task_domain("minari/D4RL/antmaze/large-play-v1") == "antmaze"
    assert task_domain("minari/D4RL/pointmaze/umaze-v2") == "maze"
    assert task_domain("d4rl/maze2d-umaze-v1") == "maze"
    assert task_domain("offrl/walker2d/medium-replay-v0") == "locomotion"
    assert task_domain("minari/local/cartpole-v0") == "other"
    reported = read_reported(default_reported_csv())
    found = d4rl_counterpart("offrl/walker2d/medium-replay-v0", "prdc", reported)
    assert (found.task, found.mean) == ("d4rl/walker2d-medium-replay-v2", 92.0)
    found = d4rl_counterpart("minari/D4RL/antmaze/umaze-diverse-v1", "prdc", reported)
    assert found.task == "d4rl/antmaze-umaze-diverse-v2"
    assert d4rl_counterpart("offrl/hopper/medium-v0", "ggdtd", reported) is None


def test_reported_csv_keeps_provenance_for_every_row():
    with open(default_reported_csv(), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 51
    for row in rows:
        assert row["offrl_task"] == "d4rl/" + row["task"]
        assert row["offrl_agent"] == re.sub(r"[^a-z0-9]", "", row["agent"].lower())
        assert row["verification"] and row["source"] and row["protocol_note"]
        float(row["score_mean"])
    reported = read_reported(default_reported_csv())
    hopper = reported[("td3bc", "d4rl/hopper-medium-v2")]
    assert (hopper.mean, hopper.std, hopper.verification) == (59.3, 4.2, "secondary")
    assert reported[("a2pr", "d4rl/hopper-medium-v2")].std is None


def test_cli_writes_the_page_beside_the_store_and_refuses_bad_stores(store, tmp_path, capsys):
    copy = tmp_path / "results" / "runs.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(store.read_bytes())
    assert main(["--store", str(copy), "--reps", "200", "--seed", "4"]) == 0
    assert f"wrote {copy.parent / 'LEADERBOARD.md'}" in capsys.readouterr().out
    assert (copy.parent / "leaderboard.html").exists()
    missing = tmp_path / "none.jsonl"
    assert main(["--store", str(missing)]) == 1
    assert f"offrl: error: {missing} does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["--store", str(empty), "--out", str(tmp_path / "e")]) == 1
    assert "holds no runs yet" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(store.read_text().splitlines()[0] + "\n{oops\n")
    assert main(["--store", str(corrupt), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert "corrupt.jsonl, line 2: not valid JSON" in err and "Traceback" not in err
    assert not (tmp_path / "e").exists() and not (tmp_path / "c").exists()
    assert main(["--store", str(store), "--reps", "0"]) == 1
    assert "--reps must be >= 1" in capsys.readouterr().err


def test_peer_records_never_enter_our_columns_or_aggregates(page, peer_page):
    """Same agent names, far-off scores: our cells and every aggregate stay what ours make."""
    offrl = section(page, "## offrl-generated datasets (offrl/)")
    with_peers = section(peer_page, "## offrl-generated datasets (offrl/)")
    rows = table_rows(section(with_peers, "### Per task"))
    assert rows["offrl/hopper/medium-v0"][0] == "20.0 ± 8.2 (3)"  # td3bc: ours only
    assert rows["offrl/hopper/medium-v0"][3] == "50.0 ± 8.2 (3)"  # prdc: ours only
    # Mean, IQM, gap, P(improvement) and the profile are ours: the peer-only task stays out.
    domain = section(with_peers, "### Domain: locomotion")
    assert domain == section(offrl, "### Domain: locomotion")
    assert "Tasks: offrl/hopper/medium-v0." in domain
    speed = table_rows(section(with_peers, "### Speed"))
    assert speed["td3bc"] == ["3", "2000", "10.0"]  # ours; the peer has a row of its own
    assert speed["td3bc (d3rlpy)"] == ["3", "300", "10.0"]
    assert speed["prdc (d3rlpy)"] == ["5", "300", "≥ 10.0"]  # 5, 10, 10, 10, 10 min
    selection = select(our_records() + peer_records())
    for board in selection.boards:
        assert not any(r.is_peer for r in board.records)
        assert all(r.is_peer for r in board.peers)
    (offrl_board,) = [b for b in selection.boards if b.source == "offrl"]
    assert offrl_board.agents == ["td3bc", "prdc"]
    assert offrl_board.normalized_tasks("locomotion") == ["offrl/hopper/medium-v0"]
    assert offrl_board.tasks == ["offrl/hopper/medium-v0", "offrl/walker2d/medium-v0"]


def test_the_peer_column_holds_the_peers_mean_std_n_beside_the_agent(peer_page):
    offrl = section(peer_page, "## offrl-generated datasets (offrl/)")
    header = next(line for line in offrl.splitlines() if line.startswith("| Task"))
    assert header == (
        "| Task | td3bc | td3bc d3rlpy (same data) | td3bc paper (D4RL)† "
        "| prdc | prdc d3rlpy (same data) | prdc paper (D4RL)† |"
    )
    rows = table_rows(section(offrl, "### Per task"))
    # td3bc's peer: 15, 25, 35 -> 25 ± sqrt(200/3) = 8.2; prdc's: 45, 55 -> 50 ± 5 over 2 seeds.
    assert rows["offrl/hopper/medium-v0"] == [
        "20.0 ± 8.2 (3)", "25.0 ± 8.2 (3)", "59.3 ± 4.2 (d4rl/hopper-medium-v2)",
        "50.0 ± 8.2 (3)", "50.0 ± 5.0 (2)", "100.3 ± 0.2 (d4rl/hopper-medium-v2)",
    ]  # fmt: skip
    # A task only the peer ran: a row of its own, "—" wherever nobody ran it.
    assert rows["offrl/walker2d/medium-v0"] == [
        "—", "—", "83.7 ± 2.1 (d4rl/walker2d-medium-v2)",
        "—", "71.0 ± 0.8 (3)", "85.2 ± 0.4 (d4rl/walker2d-medium-v2)",
    ]  # fmt: skip
    assert "d3rlpy (same data): the agent's algorithm as implemented in d3rlpy" in offrl
    assert "dashed: a peer implementation on the same data" in offrl
    # 8 peer runs shown, the 3 on another dataset than d4rl/hopper-medium-v2's left out.
    assert "8 peer runs (another library's implementation" in peer_page
    assert "3 more peer runs left out" in peer_page


def test_a_peer_run_on_another_dataset_than_the_rows_is_left_out():
    ours = make_record("td3bc", "offrl/hopper/medium-v0", 0, 20.0)
    same = make_peer("td3bc", "offrl/hopper/medium-v0", 0, 25.0)
    other = make_peer("td3bc", "offrl/hopper/medium-v0", 1, 90.0, dataset_checksum="f" * 64)
    # Appended last, the peer's dataset still does not decide a row ours are on.
    selection = select([ours, same, other])
    (board,) = selection.boards
    assert (board.records, board.peers) == ((ours,), (same,))
    assert (selection.peers_shown, selection.peers_left_out, selection.outdated) == (1, 1, 0)
    # Where only peers ran a task, their latest dataset decides.
    only = make_peer("prdc", "offrl/walker2d/medium-v0", 0, 70.0)
    remade = make_peer("prdc", "offrl/walker2d/medium-v0", 1, 75.0, dataset_checksum="f" * 64)
    (board,) = select([only, remade]).boards
    assert (board.records, board.peers) == ((), (remade,))


def test_peers_keep_their_newest_adapter_version_whatever_our_agents_version():
    """The behaviour versions are our agents': a peer's behavior_version is its adapter's."""
    ours = dataclasses.replace(
        make_record("td3bc", "offrl/hopper/medium-v0", 0, 20.0), behavior_version=3
    )
    old = make_peer("td3bc", "offrl/hopper/medium-v0", 0, 25.0)
    new = make_peer("td3bc", "offrl/hopper/medium-v0", 0, 30.0, behavior_version=2)
    selection = select([ours, new, old], {"td3bc": 3})
    (board,) = selection.boards
    assert (board.records, board.peers) == ((ours,), (new,))
    assert (selection.old_behavior, selection.peers_left_out) == (0, 1)
    assert board.finals("offrl/hopper/medium-v0", "td3bc").tolist() == [20.0]
    assert board.finals("offrl/hopper/medium-v0", "td3bc", "d3rlpy").tolist() == [30.0]


def test_a_page_with_peers_regenerates_byte_identically(peer_store, tmp_path):
    first = build_leaderboard(peer_store, out_dir=tmp_path / "a", bootstrap_reps=REPS, seed=1)
    second = build_leaderboard(peer_store, out_dir=tmp_path / "b", bootstrap_reps=REPS, seed=1)
    relative = [p.relative_to(tmp_path / "a") for p in first]
    assert relative == [p.relative_to(tmp_path / "b") for p in second]
    assert any(p.name == "offrl_walker2d_medium-v0.png" for p in relative)  # the peer's curve
    for path in relative:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()


def test_boards_without_peer_runs_render_exactly_as_before(
    page, peer_page, store, peer_store, tmp_path
):
    """The peers here are on offrl/ tasks (and left out on d4rl/): every other board's section
    and plots are the page without peers, byte for byte."""
    for heading in (
        "## D4RL dataset files (d4rl/): 1,000,000 steps",
        "## D4RL dataset files (d4rl/): 2,000 steps",
        "## Minari datasets (minari/)",
    ):
        assert section(peer_page, heading) == section(page, heading)
    build_leaderboard(store, out_dir=tmp_path / "ours", bootstrap_reps=REPS, seed=3)
    build_leaderboard(peer_store, out_dir=tmp_path / "both", bootstrap_reps=REPS, seed=3)
    untouched = [
        p.relative_to(tmp_path / "ours")
        for p in (tmp_path / "ours" / "plots").rglob("*.png")
        if not p.relative_to(tmp_path / "ours" / "plots").parts[0].startswith("offrl-")
    ]
    assert len(untouched) >= 6
    for relative in untouched:
        assert (tmp_path / "both" / relative).read_bytes() == (
            tmp_path / "ours" / relative
        ).read_bytes()
    # Without peer records, not even the header mentions them.
    assert "peer runs" not in page and "d3rlpy" not in page


def test_each_row_shows_its_own_datasets_episodes_beside_the_runs(
    hopper_dataset, tmp_path, monkeypatch
):
    """The data column: the row's dataset's episodes, summarised into datasets.jsonl beside the
    store while the data is on disk; a board regenerates to the same bytes where it is not."""
    task = f"minari/{HOPPER_DATASET_ID}"
    loaded = load_task(task)
    ours = [
        dataclasses.replace(make_record("td3bc", task, s, 0.0), dataset_checksum=loaded.checksum)
        for s in range(2)
    ]
    absent = make_record("td3bc", "d4rl/hopper-medium-v2", 0, 50.0)  # no such file here
    store = tmp_path / "store" / "runs.jsonl"
    append(store, [*ours, absent])
    build_leaderboard(store, out_dir=tmp_path / "with", bootstrap_reps=REPS)

    (line,) = (tmp_path / "store" / "datasets.jsonl").read_text().splitlines()
    returns = episode_returns(loaded.transitions)
    scores = loaded.task.normalized_score(returns)
    scores = returns if scores is None else scores
    expected = f"{scores.mean():.1f} ± {scores.std():.1f}, best {scores.max():.1f}"
    assert f'"task": "{task}"' in line and len(scores) == len(hopper_dataset.episode_returns)
    page = (tmp_path / "with" / "LEADERBOARD.md").read_text()
    rows = [row for row in page.splitlines() if row.startswith("| ")]
    assert f"| {expected} ({len(scores):,} ep.) |" in next(r for r in rows if task in r)
    # its own board (another source), where no row has a summary: no data column
    assert "| d4rl/hopper-medium-v2 | 50.0 ± 0.0 (1) |" in page

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "no-data"))
    build_leaderboard(store, out_dir=tmp_path / "without", bootstrap_reps=REPS)
    assert (tmp_path / "without" / "LEADERBOARD.md").read_text() == page


def test_a_store_without_dataset_summaries_renders_without_the_data_column(page):
    assert "data (its episodes)" not in page


@pytest.mark.parametrize(
    ("line", "problem"),
    [("{torn", "line 1: not valid JSON"), ('{"task": "x"}', "line 1: not a dataset summary")],
)
def test_a_broken_dataset_summary_is_one_clear_error_and_writes_nothing(
    store, tmp_path, capsys, line, problem
):
    results = tmp_path / "results"
    results.mkdir()
    (results / "runs.jsonl").write_bytes(store.read_bytes())
    (results / "datasets.jsonl").write_text(line + "\n")
    assert main(["--store", str(results / "runs.jsonl"), "--out", str(tmp_path / "page")]) == 1
    err = capsys.readouterr().err
    assert f"datasets.jsonl, {problem}" in err and "Delete that line" in err
    assert "Traceback" not in err and not (tmp_path / "page").exists()


def test_a_summary_that_cannot_be_written_leaves_the_board_without_it(
    hopper_dataset, tmp_path, capsys
):
    """The store's folder refuses the new summary (here its datasets.jsonl points into a folder
    that does not exist): one line says so, and the board is written without the data column."""
    task = f"minari/{HOPPER_DATASET_ID}"
    record = make_record("td3bc", task, 0, 0.0)
    record = dataclasses.replace(record, dataset_checksum=load_task(task).checksum)
    results = tmp_path / "results"
    append(results / "runs.jsonl", [record])
    (results / "datasets.jsonl").symlink_to(tmp_path / "gone" / "datasets.jsonl")
    assert main(["--store", str(results / "runs.jsonl"), "--out", str(tmp_path / "page")]) == 0
    err = capsys.readouterr().err
    assert "offrl leaderboard: no new dataset summaries" in err and "Traceback" not in err
    page = (tmp_path / "page" / "LEADERBOARD.md").read_text()
    assert task in page and "data (its episodes)" not in page
