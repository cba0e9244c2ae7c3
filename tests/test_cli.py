"""`offrl` on the command line: help, train -> eval, data verbs, and one clear error per bad input.

Most calls go through `offrl.cli.main([...])` in this process (stdout/stderr captured); a few run
the installed `offrl` console script to check real exit codes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID, HOPPER_STEPS, write_d4rl

import offrl
from offrl.cli import main

TASK = f"minari/{HOPPER_DATASET_ID}"
SMALL_FLAGS = ["--hidden-dims", "64", "64", "--batch-size", "64"]
OFFRL = Path(sys.executable).with_name("offrl")


def files_under(*folders: Path) -> dict[str, bytes]:
    """Every file under the folders with its bytes: proves a failed command wrote nothing."""
    return {str(p): p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


def assert_one_error(captured, *needles: str) -> str:
    """One `offrl: error:` message on stderr naming the problem, nothing on stdout."""
    err = captured.err
    assert captured.out == ""
    assert err.startswith("offrl: error: ") and err.count("offrl: error:") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


# --- help -----------------------------------------------------------------------------------


def test_top_level_help_lists_the_verbs(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("train", "eval", "data"):
        assert re.search(rf"^  {verb} ", out, re.MULTILINE), out
    assert "offrl VERB --help" in out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"offrl {offrl.__version__}\n"


def test_unknown_verb_is_an_error(capsys):
    assert main(["trian"]) == 2
    captured = capsys.readouterr()
    assert "unknown command 'trian'" in captured.err and "train" in captured.err


@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        (
            ["train", "--help"],
            [
                "--task",
                "--agent",
                "--seeds",
                "--seed",
                "--steps",
                "--eval-every",
                "--eval-episodes",
                "--log-every",
                "--out",
                "--no-progress",
                "--tensorboard",
                "--wandb",
                "--wandb-mode",
                # the agent's hyper-parameters become flags of their own
                "--alpha",
                "--actor-lr",
                "--critic-lr",
                "--hidden-dims",
                "--batch-size",
                "--tau",
                "--discount",
                "--policy-freq",
                "--reward-scale",
            ],
        ),
        (["data", "--help"], ["list", "info", "make", "collect"]),
        (["data", "list", "--help"], ["--verify"]),
        (
            ["data", "make", "--help"],
            ["TASK", "--all", "--seed", "--steps", "--overwrite", "--workers", "--no-progress"],
        ),
        (["behavior", "--help"], ["train", "ship", "plot"]),
        (
            ["behavior", "ship", "--help"],
            ["--run", "--env", "--out", "--episodes", "--replay-snapshots"],
        ),
        (["behavior", "plot", "--help"], ["--run", "--out"]),
        (
            ["data", "collect", "--help"],
            ["--env", "--dataset-id", "--steps", "--seed", "--overwrite"],
        ),
        (["eval", "--help"], ["PATH", "--episodes", "--step"]),
    ],
)
def test_verb_help_exits_zero_and_lists_the_flags(argv, flags, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # keep tyro from wrapping flag names
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    for flag in flags:
        assert flag in out, f"{flag} missing from `offrl {' '.join(argv)}`:\n{out}"


def test_console_script_exit_codes(tmp_path):
    """The installed `offrl` script: 0 for help, 1 and one message for a bad task name."""
    help_ = subprocess.run([str(OFFRL), "--help"], capture_output=True, text=True, timeout=120)
    assert help_.returncode == 0 and "train" in help_.stdout

    out = tmp_path / "run"
    bad = subprocess.run(
        [str(OFFRL), "train", "--task", "d4rl/hoper-medium-v2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout == ""
    assert bad.stderr.startswith("offrl: error: Unknown task 'd4rl/hoper-medium-v2'")
    assert "Did you mean: d4rl/hopper-medium-v2" in bad.stderr and "Traceback" not in bad.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


# --- train -> eval --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(hopper_dataset, tmp_path_factory) -> tuple[Path, str]:
    """`offrl train` with tiny settings and non-default hyper-parameters; (run folder, stdout)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    argv = [
        "train",
        "--task",
        TASK,
        "--steps",
        "200",
        "--eval-every",
        "100",
        "--eval-episodes",
        "2",
        "--seeds",
        "2",
        "--alpha",
        "2.0",
        "--actor-lr",
        "1e-3",
        "--out",
        str(run_dir),
        "--no-progress",
        *SMALL_FLAGS,
    ]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code == 0, err.getvalue()
    assert (
        f"offrl train: td3bc on {TASK}; config from the official values (the Config defaults "
        "for this task) and the flags; differs from the Config defaults in: batch_size=64, "
        "alpha=2.0, actor_lr=0.001, hidden_dims=(64, 64)\n"
    ) in err.getvalue()
    return run_dir, out.getvalue()


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_train_writes_a_run_and_summarises_it(cli_run):
    run_dir, stdout = cli_run
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["task"] == TASK and manifest["seeds"] == [0, 1]
    config = manifest["config"]
    assert config["alpha"] == 2.0 and config["actor_lr"] == 1e-3
    assert config["hidden_dims"] == [64, 64] and config["batch_size"] == 64
    records = records_of(run_dir)
    assert [(r["step"], r["seed"]) for r in records] == [(100, 0), (100, 1), (200, 0), (200, 1)]
    assert all(math.isfinite(r["return"]) and r["normalized_score"] is None for r in records)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["100", "200"]

    lines = stdout.strip().splitlines()
    assert lines[0] == f"run {run_dir}: td3bc on {TASK}"
    for seed, line in zip((0, 1), lines[1:], strict=True):
        mine = [r["return"] for r in records if r["seed"] == seed]
        assert line == (
            f"  seed {seed}: step 200, return last {mine[-1]:.1f}, "
            f"mean of last 2 evaluations {np.mean(mine):.1f}"
        )


@pytest.mark.parametrize("step", [None, 100])
def test_eval_reproduces_the_recorded_returns(cli_run, capsys, step):
    """Evaluation seeds are fixed per training seed, so a checkpoint re-evaluates to its record."""
    run_dir, _ = cli_run
    argv = ["eval", str(run_dir), "--episodes", "2"]
    if step is not None:
        argv += ["--step", str(step)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    shown = step or 200
    assert out.splitlines()[0] == f"td3bc on {TASK}, checkpoint step {shown}, 2 episodes/seed"
    for record in (r for r in records_of(run_dir) if r["step"] == shown):
        expected = f"  seed {record['seed']}: return {record['return']:.1f} ± "
        expected += f"{record['return_std']:.1f}"
        assert expected in out.splitlines(), out


# --- data -----------------------------------------------------------------------------------


def test_data_list_shows_the_collected_dataset(hopper_dataset, capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert TASK in rows, out
    assert f"{HOPPER_STEPS:,} steps" in rows[TASK] and "Hopper-v5" in rows[TASK]
    assert "not on disk" in rows["d4rl/hopper-medium-v2"]


def test_data_info_shows_the_counts(hopper_dataset, capsys):
    assert main(["data", "info", TASK]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^transitions +{HOPPER_STEPS:,}$", out, re.MULTILINE), out
    assert re.search(r"^observation dim +11$", out, re.MULTILINE)
    assert re.search(r"^action dim +3$", out, re.MULTILINE)
    assert re.search(rf"^dones +{hopper_dataset.terminated:,}$", out, re.MULTILINE)
    assert re.search(rf"^episodes +{hopper_dataset.episodes:,} ", out, re.MULTILINE)
    assert "none: raw returns are reported" in out


def test_data_collect_then_refuse_to_overwrite(minari_dir, capsys):
    dataset = "test2/hopper-small-v0"
    argv = ["data", "collect", "--env", "Hopper-v5", "--steps", "300", "--dataset-id", dataset]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Wrote 300 transitions of the 'random' policy in Hopper-v5 (seed 0)")
    assert f"minari/{dataset}" in out

    assert main(["data", "info", f"minari/{dataset}"]) == 0
    info = capsys.readouterr().out
    assert re.search(r"^transitions +300$", info, re.MULTILINE), info

    before = files_under(minari_dir)
    assert main([*argv, "--seed", "1"]) == 1
    assert_one_error(capsys.readouterr(), f"'{dataset}' already exists", "--overwrite")
    assert files_under(minari_dir) == before


# --- bad input: one message naming the problem and the fix, exit 1, nothing written ----------


@pytest.fixture
def untouched(data_dirs, tmp_path):
    """Run a command expected to fail; check it wrote nothing to the data caches or --out."""

    def check(argv: list[str], capsys, *needles: str) -> str:
        caches = (data_dirs.minari, Path(os.environ["D4RL_DATASET_DIR"]))
        before = files_under(*caches)
        out = tmp_path / "run"
        assert main([*argv, "--out", str(out)] if argv[0] == "train" else argv) == 1
        err = assert_one_error(capsys.readouterr(), *needles)
        assert not out.exists(), f"{out} was created by a failing command"
        assert files_under(*caches) == before
        return err

    return check


D4RL_TASK = "d4rl/hopper-medium-v2"


def test_missing_d4rl_file_lists_the_places_searched(d4rl_dir, tmp_path, capsys, untouched):
    err = untouched(["train", "--task", D4RL_TASK], capsys, "not found. Looked for:")
    for folder in (d4rl_dir, tmp_path / "home" / ".d4rl" / "datasets"):
        assert str(folder / "hopper-medium-v2.hdf5") in err
        assert str(folder / "hopper_medium-v2.hdf5") in err
    assert "offrl data collect --env Hopper-v5" in err


def test_truncated_hdf5_file(d4rl_dir, hopper_raw, capsys, untouched):
    path = write_d4rl(d4rl_dir / "hopper-medium-v2.hdf5", hopper_raw)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    untouched(
        ["train", "--task", D4RL_TASK],
        capsys,
        str(path),
        "cannot be read as an HDF5 file",
        "truncated or corrupt",
    )


def broken(raw: dict[str, np.ndarray], how: str) -> dict[str, np.ndarray]:
    raw = {key: value.copy() for key, value in raw.items()}
    if how == "missing keys":
        del raw["actions"], raw["terminals"]
    elif how == "lengths":
        raw["rewards"] = raw["rewards"][:-7]
    elif how == "nan":
        raw["observations"][11, 4] = np.nan
    elif how == "inf":
        raw["rewards"][23] = np.inf
    elif how == "extreme":
        raw["observations"][7, 2] = 1e30
    elif how == "actions out of bounds":
        raw["actions"][[5, 9], 1] = [3.0, -2.5]
    return raw


@pytest.mark.parametrize(
    ("how", "needles"),
    [
        ("missing keys", ["lacks the key(s) actions, terminals", "A D4RL file needs"]),
        ("lengths", ["arrays have different lengths", "rewards 2993", "observations 3000"]),
        ("nan", ["'observations' holds 1 NaN/inf value(s) in 1 row(s), first at row 11"]),
        ("inf", ["'rewards' holds 1 NaN/inf value(s) in 1 row(s), first at row 23"]),
        (
            "extreme",
            [
                "'observations' holds 1 value(s) beyond +-1e+06 in 1 row(s) (column 2: 1e+30 to "
                "1e+30), first at row 7",
                "would be a constant",
            ],
        ),
        (
            "actions out of bounds",
            [
                "2 of 3000 actions lie outside the action bounds of Hopper-v5 ([-1, 1]; column 1:"
                " -2.5 to 3), first at row 5",
                "clip its actions to the bounds",
            ],
        ),
    ],
)
def test_malformed_d4rl_file(d4rl_dir, hopper_raw, capsys, untouched, how, needles):
    path = write_d4rl(d4rl_dir / "hopper-medium-v2.hdf5", broken(hopper_raw, how))
    err = untouched(["train", "--task", D4RL_TASK], capsys, str(path), *needles)
    assert re.search(r"download or generate it again|does not follow|fix the data|clip", err), err


def test_data_of_another_env_under_a_hopper_name(d4rl_dir, walker_raw, capsys, untouched):
    write_d4rl(d4rl_dir / "hopper-medium-v2.hdf5", walker_raw)
    untouched(
        ["train", "--task", D4RL_TASK],
        capsys,
        "observations of dimension 17 and actions of dimension 6",
        "Hopper-v5, which has 11 and 3",
        "use the dataset that matches the task name",
    )


def test_data_info_reports_the_same_errors(d4rl_dir, walker_raw, capsys, untouched):
    write_d4rl(d4rl_dir / "hopper-medium-v2.hdf5", walker_raw)
    untouched(["data", "info", D4RL_TASK], capsys, "observations of dimension 17")


def test_unknown_task_suggests_the_closest(capsys, untouched):
    err = untouched(
        ["train", "--task", "d4rl/hoper-medium-v2"],
        capsys,
        "Unknown task 'd4rl/hoper-medium-v2'",
        "`offrl data list`",
    )
    suggestions = re.search(r"Did you mean: ([^?]+)\?", err).group(1).split(", ")
    assert suggestions[0] == "d4rl/hopper-medium-v2"


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--agent", "nope"], ["unknown agent 'nope'", "choose one of: a2pr, ggdtd, prdc, td3bc"]),
        (["--tau", "0"], ["invalid hyper-parameter: tau must be in (0, 1], got 0.0"]),
        (["--batch-size", "0"], ["invalid hyper-parameter: batch_size must be >= 1, got 0"]),
        (["--actor-lr", "0"], ["invalid hyper-parameter: actor_lr must be in (0, 1], got 0.0"]),
        (["--actor-lr", "inf"], ["invalid hyper-parameter: actor_lr must be finite, got inf"]),
        (["--critic-lr", "5"], ["invalid hyper-parameter: critic_lr must be in (0, 1], got 5.0"]),
        (["--alpha", "inf"], ["invalid hyper-parameter: alpha must be finite, got inf"]),
        (["--alpha", "nan"], ["invalid hyper-parameter: alpha must be finite, got nan"]),
        (["--seed", "-1"], ["--seed must be >= 0, got -1"]),
        (["--seeds", "0"], ["--seeds must be >= 1, got 0"]),
        (["--steps", "0"], ["--steps must be >= 1, got 0"]),
        (["--eval-episodes", "0"], ["--eval-episodes must be >= 1, got 0"]),
        (["--log-every", "0"], ["--log-every must be >= 1, got 0"]),
        (["--eval-workers", "0"], ["--eval-workers must be >= 1, got 0"]),
    ],
)
def test_invalid_options(hopper_dataset, capsys, untouched, flags, needles):
    untouched(["train", "--task", TASK, *flags], capsys, *needles)


def test_eval_on_a_folder_that_is_not_a_run(tmp_path, capsys, untouched):
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    untouched(["eval", str(folder)], capsys, "not a run folder (no run.json)", "offrl train")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_eval_of_a_missing_checkpoint_lists_the_available_ones(cli_run, capsys):
    assert main(["eval", str(cli_run[0]), "--step", "150"]) == 1
    assert_one_error(capsys.readouterr(), "no checkpoint at step 150", "[100, 200]")


# --- known bugs: the tests state the intended behaviour --------------------------------------


def test_tensorboard_without_tensorboardx_writes_nothing(
    hopper_dataset, capsys, untouched, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` fails
    argv = ["train", "--task", TASK, "--steps", "100", "--eval-every", "100", "--seeds", "2"]
    untouched([*argv, *SMALL_FLAGS, "--tensorboard"], capsys, "needs tensorboardX")


def test_out_that_is_a_file_is_one_clear_error(hopper_dataset, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    argv = ["train", "--task", TASK, "--steps", "100", "--eval-every", "100", "--seeds", "2"]
    assert main([*argv, *SMALL_FLAGS, "--out", str(target), "--no-progress"]) == 1
    assert_one_error(capsys.readouterr(), str(target))
    assert target.read_text() == "not a folder"


def test_eval_with_a_negative_episode_count_is_one_clear_error(cli_run, capsys):
    assert main(["eval", str(cli_run[0]), "--episodes", "-1"]) == 1
    assert_one_error(capsys.readouterr(), "--episodes")
