"""`offrl bench`: plans, the skip-what-is-stored rule, forced re-runs and the Ray executor."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HOPPER_DATASET_ID

from benchmarks import store
from benchmarks.configs import PROFILES, Profile, config_for, select
from benchmarks.runner import RunSpec, bench, execute, group_runs, plan, run_ray
from benchmarks.status import report
from offrl.agent import resolve_agent
from offrl.data import minari_io
from offrl.data.collect import collect
from offrl.data.registry import load_task
from offrl.envs.families import env_family
from offrl.errors import ConfigError, DatasetError
from offrl.train import Protocol, fit

TASK = f"minari/{HOPPER_DATASET_ID}"
TINY = Profile(
    name="tiny",
    agents=("td3bc",),
    tasks=(TASK,),
    seeds=(0, 1),
    steps=60,
    eval_every=30,
    eval_episodes=1,
    note="test",
)


@pytest.mark.parametrize(
    ("task", "env"),
    [
        ("offrl/hopper/medium-v0", "hopper"),
        ("d4rl/halfcheetah-medium-expert-v2", "halfcheetah"),
        ("minari/D4RL/antmaze/umaze-v1", "antmaze"),
        ("offrl/pointmaze/umaze-dense-v0", "pointmaze"),
        ("minari/local/thing-v0", None),
    ],
)
def test_task_environment_family(task, env):
    assert env_family(task) == env


def test_official_per_environment_values_are_applied():
    assert config_for("prdc", "offrl/halfcheetah/medium-v0").alpha == 40.0
    assert config_for("prdc", "d4rl/antmaze-umaze-v2").reward_scale == 10000.0
    assert config_for("a2pr", "offrl/hopper/medium-v0").discount == 0.995
    assert config_for("td3bc", "offrl/halfcheetah/medium-v0").alpha == 2.5


def test_profiles_state_their_protocol():
    assert PROFILES["full"].steps == 1_000_000 and len(PROFILES["full"].seeds) == 5
    assert "REDUCED" in PROFILES["default"].note
    assert set(PROFILES["default"].agents) == {"td3bc", "prdc", "a2pr", "ggdtd"}


def test_the_antmaze_profile_is_the_reduced_antmaze_protocol():
    antmaze = PROFILES["antmaze"]
    assert antmaze.tasks == ("offrl/antmaze/umaze-v0",) and {"td3bc", "prdc"} <= set(antmaze.agents)
    assert (antmaze.eval_every, antmaze.eval_episodes) == (5_000, 10) and len(antmaze.seeds) == 3
    assert "REDUCED" in antmaze.note and "success rate" in antmaze.note


def test_bad_bench_arguments_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="Unknown bench profile"):
        bench("huge", tmp_path)
    with pytest.raises(ConfigError, match="--executor"):
        bench("smoke", tmp_path, executor="slurm")


def test_a_profile_can_be_cut_to_some_agents_in_a_chosen_order_and_some_tasks():
    repro = PROFILES["repro"]
    cut = select(repro, ("a2pr", "ggdtd", "a2pr"), ("offrl/walker2d/medium-v0",))
    assert cut.agents == ("a2pr", "ggdtd") and cut.tasks == ("offrl/walker2d/medium-v0",)
    assert (cut.steps, cut.seeds, cut.seed_by_seed) == (
        repro.steps,
        repro.seeds,
        repro.seed_by_seed,
    )
    assert select(repro, None, None) == repro
    with pytest.raises(ConfigError, match="--agents cql: profile repro trains td3bc, prdc"):
        select(repro, ("cql",), None)
    with pytest.raises(ConfigError, match="--tasks offrl/hopper/expert-v0: profile repro's tasks"):
        select(repro, None, ("offrl/hopper/expert-v0",))
    with pytest.raises(ConfigError, match="every task on disk"):
        select(PROFILES["full"], None, ("offrl/hopper/medium-v0",))


def test_a_cut_bench_plans_only_the_agents_asked_for(hopper_dataset, tmp_path):
    two = dataclasses.replace(TINY, agents=("td3bc", "prdc"), steps=2, eval_every=1)
    checksums = {TASK: load_task(TASK).checksum}
    planned = plan(select(two, ("prdc",), None), checksums, tmp_path)
    assert [(s.agent, s.seeds) for s in planned] == [("prdc", (0, 1))]
    with pytest.raises(ConfigError, match="--agents ggdtd"):
        bench(two, tmp_path, agents=("ggdtd",))


def test_extra_seeds_replace_the_profiles_and_bad_ones_are_refused(hopper_dataset, tmp_path):
    checksums = {TASK: load_task(TASK).checksum}
    planned = plan(select(TINY, None, None, (5, 3, 5)), checksums, tmp_path)
    assert [(s.agent, s.seeds) for s in planned] == [("td3bc", (5, 3))]
    for seeds in ((), (2, -1)):
        with pytest.raises(ConfigError, match="give one or more seeds >= 0"):
            select(TINY, None, None, seeds)


@pytest.fixture(scope="module")
def finished(hopper_dataset, tmp_path_factory):
    results = tmp_path_factory.mktemp("bench")
    specs = bench(TINY, results)
    return results, specs


def test_a_profile_runs_every_seed_once_and_stores_it(finished):
    results, specs = finished
    assert [(s.agent, s.task, s.seeds) for s in specs] == [("td3bc", TASK, (0, 1))]
    records = store.read_store(results / "runs.jsonl")
    assert sorted(r.seed for r in records) == [0, 1]
    assert all(r.curve_steps == [30, 60] and r.protocol["steps"] == 60 for r in records)


def test_stored_runs_are_skipped_and_new_seeds_planned(finished):
    results, (spec,) = finished
    checksums = {TASK: load_task(TASK).checksum}
    assert spec.dataset_checksum == checksums[TASK]
    assert plan(TINY, checksums, results) == []
    more = dataclasses.replace(TINY, seeds=(0, 1, 2))
    assert [s.seeds for s in plan(more, checksums, results)] == [(2,)]
    assert [s.seeds for s in plan(TINY, checksums, results, force=True)] == [(0, 1)]


def test_rerunning_a_finished_profile_says_what_it_skipped(finished, capsys):
    results, _ = finished
    assert bench(TINY, results) == []
    out = capsys.readouterr().out
    assert "2 (agent, task, seed) run(s) of the profile are in" in out
    assert "skipped (--force trains them again); 0 to train" in out


def test_seed_by_seed_agents_run_one_seed_per_run_cheap_agents_first(finished):
    results, _ = finished
    checksums = {TASK: load_task(TASK).checksum, "offrl/hopper/medium-v0": "0" * 64}
    profile = dataclasses.replace(
        TINY, agents=("td3bc", "a2pr"), seeds=(0, 1, 2), seed_by_seed=("a2pr",)
    )
    planned = [(s.agent, s.task, s.seeds) for s in plan(profile, checksums, results)]
    assert planned == [
        ("td3bc", TASK, (2,)),  # seeds 0 and 1 are stored
        ("td3bc", "offrl/hopper/medium-v0", (0, 1, 2)),
        *[("a2pr", task, (seed,)) for task in checksums for seed in (0, 1, 2)],
    ]


def test_status_counts_what_the_bench_would_skip_and_where_unfinished_runs_got(finished):
    results, _ = finished
    absent = "offrl/hopper/medium-v0"  # never made in the tests' data folder
    profile = dataclasses.replace(
        TINY, agents=("td3bc", "prdc"), tasks=(TASK, absent), seeds=(0, 1, 2)
    )
    loaded = load_task(TASK)
    planned = plan(profile, {TASK: loaded.checksum}, results)
    (unfinished,) = [spec for spec in planned if spec.agent == "td3bc"]
    assert unfinished.seeds == (2,)
    # its first evaluation interval only, in the folder the bench would resume
    fit(
        resolve_agent("td3bc"),
        loaded.transitions,
        unfinished.config,
        seeds=(2,),
        steps=30,
        eval_every=30,
        eval_episodes=1,
        task=loaded.task,
        out_dir=unfinished.run_dir(results),
        progress=False,
    )
    lines = report(profile, results).splitlines()
    assert "| td3bc | 2/3 (s2 at 30) | 0/3 | 2/6 |" in lines
    assert "| prdc | 0/3 | 0/3 | 0/6 |" in lines
    assert "offrl: 2 of 12 runs stored" in lines
    assert f"no standard dataset on disk yet (the bench makes it): {absent}" in lines
    assert absent not in minari_io.local_dataset_ids()
    peers_known = "| td3bc (d3rlpy) | 0/3 | 0/3 | 0/6 |" in lines
    assert peers_known or any(line.startswith("d3rlpy peers: unknown") for line in lines)


def test_the_repro_profile_is_the_long_horizon_protocol():
    repro = PROFILES["repro"]
    assert repro.steps >= 100_000 and (repro.eval_every, repro.eval_episodes) == (5_000, 10)
    assert len(repro.seeds) == 3 and set(repro.agents) == {"td3bc", "prdc", "a2pr", "ggdtd"}
    assert {"offrl/hopper/medium-v0", "offrl/walker2d/medium-v0"} <= set(repro.tasks)
    assert "hours on a 2-core CPU" in repro.note


def test_runs_on_a_changed_dataset_are_planned_again_in_their_own_folder(finished):
    results, (spec,) = finished
    (again,) = plan(TINY, {TASK: "0" * 64}, results)
    assert again.seeds == (0, 1) and again.run_dir(results) != spec.run_dir(results)
    with pytest.raises(DatasetError, match="the dataset changed since"):
        execute(again, results, progress=False)
    assert not again.run_dir(results).exists()


def test_runs_group_by_agent_config_seeds_and_environment():
    def spec(agent, task, seeds=(0, 1), alpha=2.5):
        config = config_for(agent, task)
        config = dataclasses.replace(config, alpha=alpha)
        return RunSpec(agent, task, seeds, config, Protocol(60, 30, 1), "0" * 64)

    hopper = [spec("td3bc", f"offrl/hopper/{level}-v0") for level in ("medium", "medium-replay")]
    apart = [
        spec("td3bc", "offrl/pointmaze/umaze-v0"),  # another environment
        spec("td3bc", "offrl/hopper/expert-v0", seeds=(2,)),  # other seeds
        spec("td3bc", "offrl/hopper/medium-expert-v0", alpha=1.0),  # another config
        spec("ggdtd", "offrl/hopper/medium-v0"),  # another agent
    ]
    specs = [hopper[0], *apart, hopper[1]]
    assert group_runs(specs) == [tuple(hopper), *[(s,) for s in apart]]
    assert group_runs(specs, group=False) == [(s,) for s in specs]


def test_a_group_stores_each_run_as_a_run_trained_alone(finished):
    """Two Hopper datasets train in one program; each run is stored from its own folder, with
    the scores of the same run trained alone (the module's first bench), up to float rounding."""
    results, _ = finished
    other = "offrl-test/hopper-random-short-v0"
    collect("Hopper-v5", "random", 800, other, seed=1)
    profile = dataclasses.replace(TINY, tasks=(TASK, f"minari/{other}"))
    grouped = results.parent / "grouped"
    specs = bench(profile, grouped)
    assert len(group_runs(specs)) == 1 and len(specs) == 2
    records = store.read_store(grouped / "runs.jsonl")
    assert sorted((r.task, r.seed) for r in records) == sorted(
        (task, seed) for task in profile.tasks for seed in (0, 1)
    )
    assert {r.run_dir for r in records} == {str(s.run_dir(grouped)) for s in specs}
    alone = {r.seed: r for r in store.read_store(results / "runs.jsonl")}
    for record in (r for r in records if r.task == TASK):
        assert record.curve_scores == pytest.approx(alone[record.seed].curve_scores, rel=1e-5)
        assert record.key == alone[record.seed].key


def test_a_ray_address_without_a_cluster_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no Ray cluster answers at --address auto"):
        run_ray([], tmp_path, "auto", False, print)


@pytest.mark.slow  # starting Ray and a JAX worker takes minutes on 2 cores
def test_ray_executor_appends_to_the_same_store(hopper_dataset, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        specs = bench(dataclasses.replace(TINY, seeds=(3,)), tmp_path, executor="ray")
    finally:
        ray.shutdown()
    assert [s.seeds for s in specs] == [(3,)]
    (record,) = store.read_store(tmp_path / "runs.jsonl")
    assert (record.seed, record.agent, record.curve_steps) == (3, "td3bc", [30, 60])


@pytest.mark.slow  # makes the 1M-transition PointMaze dataset and compiles all four agents
def test_smoke_profile_end_to_end_through_the_cli(tmp_path):
    offrl = Path(sys.executable).with_name("offrl")
    results = tmp_path / "results"
    bench_run = subprocess.run(
        [offrl, "bench", "--profile", "smoke", "--results", results],
        capture_output=True,
        text=True,
    )
    assert bench_run.returncode == 0, bench_run.stderr[-3000:]
    assert "bench smoke: SMOKE test of the pipeline only" in bench_run.stdout
    records = store.read_store(results / "runs.jsonl")
    assert sorted({r.agent for r in records}) == ["a2pr", "ggdtd", "prdc", "td3bc"]
    assert all(r.task == "offrl/pointmaze/umaze-v0" and len(r.curve_steps) == 2 for r in records)
    board = subprocess.run(
        [offrl, "leaderboard", "--store", results / "runs.jsonl"], capture_output=True, text=True
    )
    assert board.returncode == 0, board.stderr[-3000:]
    page = (results / "LEADERBOARD.md").read_text()
    assert all(agent in page for agent in ("td3bc", "prdc", "a2pr", "ggdtd"))
    status = subprocess.run(
        [offrl, "status", "--profile", "smoke", "--results", results],
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0, status.stderr[-3000:]
    assert "offrl: 8 of 8 runs stored" in status.stdout.splitlines()
