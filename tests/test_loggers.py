"""Weights & Biases logging of a real run, in offline mode (no network), read back from the runs'
transaction logs with wandb's own reader (`wandb leet inspect --json`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import logged_run

from offrl.loggers import WandbOptions
from offrl.run_files import LOSSES, read_records

wandb = pytest.importorskip("wandb")


def wandb_log(run_file: Path) -> list[dict]:
    """Every record of a run's .wandb transaction log, as wandb's reader prints it."""
    reader = Path(sys.executable).with_name("wandb")
    printed = subprocess.run(
        [str(reader), "leet", "inspect", str(run_file), "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [json.loads(line) for line in printed.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def offline_run(hopper_dataset, tmp_path_factory):
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            patch.setenv(name, str(home))
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        result = logged_run(
            tmp_path_factory.mktemp("wandb") / "run", wandb=WandbOptions(project="offrl-test")
        )
    return result


def test_each_seed_is_one_offline_wandb_run_with_the_config(offline_run):
    run_files = sorted((offline_run.run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(run_files) == 2
    runs = [next(r["run"] for r in wandb_log(f) if r["type"] == "run") for f in run_files]
    assert sorted(r["display_name"] for r in runs) == [
        "td3bc-minari/offrl-test/hopper-random-v0-seed3",
        "td3bc-minari/offrl-test/hopper-random-v0-seed4",
    ]
    for run in runs:
        assert run["project"] == "offrl-test"
        assert run["run_group"] == "td3bc-minari/offrl-test/hopper-random-v0"
        config = run["config"]["update"]
        assert config["alpha"] == 2.5 and config["batch_size"] == 64
        assert config["log_every"] == 25 and config["seeds"] == [3, 4]
        assert config["seed"] == int(run["display_name"].rsplit("seed", 1)[1])


def test_wandb_holds_the_losses_every_log_every_and_the_evaluations(offline_run):
    losses = read_records(offline_run.run_dir, LOSSES)
    for run_file in (offline_run.run_dir / "wandb").glob("offline-run-*/run-*.wandb"):
        log = wandb_log(run_file)
        seed = next(r["run"]["config"]["update"]["seed"] for r in log if r["type"] == "run")
        history = {
            r["history"]["step"]["num"]: r["history"]["item"] for r in log if r["type"] == "history"
        }
        assert sorted(history) == [25, 50, 75, 100]
        for record in (r for r in losses if r["seed"] == seed):
            logged = history[record["step"]]
            for name, value in record["losses"].items():
                assert logged[f"train/{name}"] == pytest.approx(value, rel=1e-12)
        for record in (r for r in offline_run.records if r["seed"] == seed):
            logged = history[record["step"]]
            assert logged["eval/return"] == pytest.approx(record["return"], rel=1e-12)
            assert logged["perf/updates_per_s"] == pytest.approx(record["updates_per_s"])
        assert "eval/return" not in history[25] and "eval/return" not in history[75]
        assert next(r for r in log if r["type"] == "exit")["exit"]["exit_code"] == 0
