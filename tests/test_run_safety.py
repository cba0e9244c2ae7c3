"""Nothing lost, nothing mislabelled: one writer per folder, kills at the moments that matter,
verified checkpoints, and bad input refused before anything is written.

Kills are real SIGKILLs of real `offrl train` processes, sent from inside the child at an exact
point of its run (a wrapper counts calls to one function of the loop), so each moment is hit
every time instead of by chance.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import HOPPER_DATASET_ID

from agents import TD3BC
from offrl.agent import DatasetSpec
from offrl.checkpoint import CHECKSUMS, Checkpointer, hide_failed_write_echoes
from offrl.cli import main
from offrl.data import minari_io, staging
from offrl.data.collect import collect
from offrl.fused import init_carry
from offrl.locks import hold

TASK = f"minari/{HOPPER_DATASET_ID}"
STEPS = 300


def train_argv(out: Path, *extra: str, hidden: str = "64") -> list[str]:
    return [
        "train",
        "--task",
        TASK,
        "--steps",
        str(STEPS),
        "--eval-every",
        "100",
        "--eval-episodes",
        "2",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--no-progress",
        "--hidden-dims",
        hidden,
        hidden,
        "--batch-size",
        "64",
        *extra,
    ]


# Runs `offrl train` and SIGKILLs itself on the n-th call of one function of the loop.
KILLED_AT = textwrap.dedent(
    """
    import os, signal, sys
    from offrl import checkpoint, train
    from offrl.cli import main

    module, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    owner = {"train": train, "checkpoint": checkpoint, "Checkpointer": checkpoint.Checkpointer}
    real = getattr(owner[module], name)
    calls = []

    def killing(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner[module], name, killing)
    sys.exit(main(sys.argv[4:]))
    """
)

MOMENTS = {
    # init_carry runs before the folder is created or held.
    "before the folder exists": ("train", "init_carry", 1),
    # The first chunk's records are appended, its checkpoint not yet begun.
    "after records, before the first checkpoint": ("Checkpointer", "save", 1),
    # Orbax has finished the second checkpoint; its checksums are not written yet.
    "during a checkpoint write": ("checkpoint", "file_digests", 2),
    # The third chunk is trained and evaluated on the worker thread while the second chunk's
    # records and checkpoint are written, or just after.
    "between checkpoints": ("train", "evaluate_states", 3),
}


def kill_at(out: Path, moment: tuple[str, str, int], log: Path) -> None:
    module, name, n = moment
    with log.open("w") as f:
        code = subprocess.call(
            [sys.executable, "-c", KILLED_AT, module, name, str(n), *train_argv(out)],
            cwd=log.parent,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    assert code == -signal.SIGKILL, log.read_text()


def records(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    for row in rows:
        assert np.isfinite(row.pop("updates_per_s")) and np.isfinite(row.pop("wall_s"))
    return rows


def final_state(run_dir: Path):
    spec = DatasetSpec(11, 3)
    like = init_carry(TD3BC, spec, TD3BC.Config(hidden_dims=(64, 64), batch_size=64), [0, 1])
    checkpointer = Checkpointer(run_dir)
    try:
        return checkpointer.restore(STEPS, like)[0]
    finally:
        checkpointer.close()


@pytest.fixture(scope="module")
def uninterrupted(hopper_dataset, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    assert main(train_argv(run_dir)) == 0
    return run_dir


def assert_same_run(resumed: Path, whole: Path) -> None:
    assert records(resumed) == records(whole)  # steps, returns, episode returns, losses
    ours, theirs = jax.tree.leaves(final_state(resumed)), jax.tree.leaves(final_state(whole))
    assert len(ours) == len(theirs) and all(map(np.array_equal, ours, theirs))


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_kill_at_each_moment_resumes_to_the_uninterrupted_run(
    uninterrupted, tmp_path, capsys, moment
):
    run_dir = tmp_path / "run"
    kill_at(run_dir, MOMENTS[moment], tmp_path / "killed.log")
    if moment == "before the folder exists":
        assert not run_dir.exists()
    assert main(train_argv(run_dir)) == 0
    capsys.readouterr()
    assert_same_run(run_dir, uninterrupted)


def test_two_kills_in_one_run(uninterrupted, tmp_path, capsys):
    run_dir = tmp_path / "run"
    kill_at(run_dir, MOMENTS["after records, before the first checkpoint"], tmp_path / "1.log")
    kill_at(run_dir, MOMENTS["between checkpoints"], tmp_path / "2.log")
    assert main(train_argv(run_dir)) == 0
    capsys.readouterr()
    assert_same_run(run_dir, uninterrupted)


# --- one writer per folder --------------------------------------------------------------------


def test_a_second_writer_on_a_run_folder_is_refused_and_the_hold_dies_with_its_holder(
    uninterrupted, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "offrl.cli", *train_argv(run_dir)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "run.json").exists():  # written under the hold
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        before = (run_dir / "run.json").read_bytes()
        assert main(train_argv(run_dir)) == 1
        err = capsys.readouterr().err
        assert f"the run folder {run_dir} is in use by pid {child.pid} on " in err
        assert "Traceback" not in err and (run_dir / "run.json").read_bytes() == before
        # With another flag too: refused for the hold, not rewritten for the config.
        assert main(train_argv(run_dir, "--alpha", "3.0")) == 1
        assert "is in use by pid" in capsys.readouterr().err
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    # kill -9 released the hold: the same command resumes the folder and finishes the run.
    assert main(train_argv(run_dir)) == 0
    capsys.readouterr()
    assert_same_run(run_dir, uninterrupted)


def test_a_second_bench_on_one_results_folder_is_refused(tmp_path, capsys):
    results = tmp_path / "results"
    with hold(results, "results folder"):
        assert main(["bench", "--profile", "smoke", "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert f"the results folder {results} is in use by pid {os.getpid()} on " in err
    assert sorted(p.name for p in results.iterdir()) == [".lock"]


# --- verified checkpoints ---------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef\x00\xff\x13\x37")


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def largest_array_file(step_dir: Path) -> Path:
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=os.path.getsize)


DAMAGE = {
    "a truncated file": lambda step: truncate(largest_array_file(step)),
    "a deleted metadata file": lambda step: (step / "state" / "_METADATA").unlink(),
    "eight bytes of garbage": lambda step: garbage(largest_array_file(step)),
    "a flipped bit": lambda step: flip_bit(largest_array_file(step)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(
    uninterrupted, tmp_path, capsys, damage
):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    DAMAGE[damage](run_dir / "checkpoints" / str(STEPS))
    # offrl eval refuses it, naming the intact one to evaluate instead.
    assert main(["eval", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert f"checkpoint {run_dir / 'checkpoints' / str(STEPS)} is damaged" in err
    assert "--step 200" in err and "Traceback" not in err
    # Training resumes from step 200, with a warning naming the damaged one, to the same run.
    assert main(train_argv(run_dir)) == 0
    err = capsys.readouterr().err
    assert f"checkpoint {run_dir / 'checkpoints' / str(STEPS)} is damaged" in err
    assert (run_dir / "checkpoints-damaged" / str(STEPS)).is_dir()
    assert_same_run(run_dir, uninterrupted)


def test_a_checkpoint_without_checksums_still_restores(uninterrupted, tmp_path, capsys):
    """Written by an offrl from before checksums, or cut off just before they were written."""
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    (run_dir / "checkpoints" / str(STEPS) / CHECKSUMS).unlink()
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0
    assert f"checkpoint step {STEPS}" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["train", "eval"])
def test_a_corrupt_run_json_is_one_clear_error(uninterrupted, tmp_path, capsys, verb):
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    (run_dir / "run.json").write_text('{"agent": "td3bc", "ta')
    argv = train_argv(run_dir) if verb == "train" else ["eval", str(run_dir)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "run.json is damaged (not valid JSON" in err and "Traceback" not in err


# --- a folder without a checkpoint holds nothing to lose ----------------------------------------


def test_a_corrected_command_restarts_a_folder_without_checkpoints(uninterrupted, tmp_path, capsys):
    run_dir = tmp_path / "run"
    # Rewards of 1e20 overflow the first update: the run stops before any checkpoint.
    assert main(train_argv(run_dir, "--reward-scale", "1e20")) == 1
    assert "diverged at step 1" in capsys.readouterr().err
    assert (run_dir / "run.json").exists()
    assert main(train_argv(run_dir)) == 0
    assert "no checkpoint yet: starting afresh" in capsys.readouterr().err
    assert_same_run(run_dir, uninterrupted)


# --- --out that cannot be a run folder ----------------------------------------------------------


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_out_that_is_or_lies_under_a_file_is_refused(hopper_dataset, tmp_path, capsys, where):
    (tmp_path / "notes").write_text("keep me")
    out = tmp_path / "notes" if where == "a file" else tmp_path / "notes" / "run"
    assert main(train_argv(out)) == 1
    err = capsys.readouterr().err
    needle = "is a file; pass a folder" if where == "a file" else "which is a file; pass a folder"
    assert needle in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
    assert (tmp_path / "notes").read_text() == "keep me"


# --- datasets: abandoned staging folders, previews ----------------------------------------------

# Starts writing a Minari dataset and SIGKILLs itself just before the staged folder moves in.
KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from offrl.data import minari_write
    from offrl.data.collect import collect

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    minari_write._move_into_place = killed
    collect("Hopper-v5", "random", 300, sys.argv[1], seed=0)
    """
)


def test_a_killed_writers_staging_folder_is_removed_by_the_next_write(minari_dir, tmp_path):

    code = subprocess.call([sys.executable, "-c", KILLED_WRITER, "local/killed-v0"])
    assert code == -signal.SIGKILL
    (abandoned,) = [p for p in minari_dir.iterdir() if p.is_dir() and p.name.startswith(".")]
    assert abandoned.name.startswith(staging.STAGING) and (abandoned / "data").is_dir()
    # A live writer's staging folder is left alone while the killed one's goes.
    with staging.staging_folder(minari_dir) as live:
        live.mkdir()
        collect("Hopper-v5", "random", 300, "local/next-v0", seed=0)
        assert live.is_dir() and not abandoned.exists()
    assert sorted(p.name for p in minari_dir.iterdir() if p.name.startswith(".")) == []


def test_an_overwrite_killed_between_its_renames_puts_the_old_dataset_back(minari_dir):
    collect("Hopper-v5", "random", 300, "local/swapped-v0", seed=0)
    target = minari_io.minari_dataset_path("local/swapped-v0")
    # What a kill between the two renames of an overwrite leaves: the id empty, the old aside.
    aside = minari_dir / f"{staging.STAGING}{'0' * 32}{staging.REPLACED}"
    os.replace(target, aside)
    assert staging.remove_abandoned_staging(minari_dir) == []
    assert target.is_dir() and not aside.exists()
    assert minari_io.read_minari_info("local/swapped-v0").total_steps == 300


def test_a_preview_is_marked_warned_about_and_never_benchmarked(minari_dir, tmp_path, capsys):
    """`offrl data make TASK --steps N` writes a preview under the standard id: data list marks
    it, train warns, and the bench makes the standard dataset before training on it."""
    from benchmarks.datasets import remake_reason
    from offrl.data.commands import list_tasks

    name = "offrl/pointmaze/umaze-v0"
    argv = ["data", "make", name, "--steps", "3000", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    preview = "3,000 transitions made with seed 0, not the standard 1,000,000 with seed 0"
    assert remake_reason(name) == f"holds {preview}"
    (row,) = [line for line in list_tasks().splitlines() if line.startswith(f"{name} ")]
    assert "(preview)" in row
    out = tmp_path / "run"
    argv = ["train", "--task", name, "--steps", "20", "--eval-every", "20", "--eval-episodes"]
    assert main([*argv, "1", "--out", str(out), "--no-progress", "--batch-size", "32"]) == 0
    assert f"warning: {name} on disk holds {preview}" in capsys.readouterr().err


# --- a full disk --------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A real tmpfs mounted on `folder`, where mounting one is permitted (root); else a skip."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root; the file-size-limit test covers a full disk")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real 3 MiB filesystem."""
    with tmpfs(tmp_path / "small", "size=3m") as folder:
        yield folder


# Runs `offrl train` with a file size limit: every write past it fails as a full disk's would.
SIZE_LIMITED = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write (EFBIG) instead of dying
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from offrl.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def assert_stopped_for_space(err: str, run_dir: Path) -> None:
    assert err.count("offrl: error:") == 1 and "Traceback" not in err and "ERROR:absl" not in err
    assert f"the disk holding {run_dir} is full" in err
    assert "could not be written, and nothing of them was kept" in err
    assert "run the same command to resume" in err
    # Nothing half-written is visible: no orbax temporary folder, no record of an unsaved step.
    checkpoints = run_dir / "checkpoints"
    assert [p.name for p in checkpoints.iterdir() if not p.name.isdigit()] == []
    saved = max((int(p.name) for p in checkpoints.iterdir()), default=0)
    assert all(r["step"] <= saved for r in records(run_dir))


def test_a_full_disk_stops_training_with_one_message_and_resumes_after(
    uninterrupted, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    argv = train_argv(run_dir, hidden="256")  # a checkpoint of ~1.5 MB: over the 1 MB limit
    child = subprocess.run(
        [sys.executable, "-c", SIZE_LIMITED, str(2**20), *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert child.returncode == 1, child.stderr[-3000:]
    assert_stopped_for_space(child.stderr, run_dir)
    assert "it had none yet" in child.stderr
    # With room again, the same command resumes and finishes the run.
    assert main(argv) == 0
    capsys.readouterr()
    assert [(r["step"], r["seed"]) for r in records(run_dir)] == [
        (step, seed) for step in range(100, STEPS + 1, 100) for seed in (0, 1)
    ]


FAILING_WRITE = """
async def write():
    raise OSError(27, "File too large")
"""


def unretrieved_failure(filename: str, holder: str) -> None:
    """A coroutine defined in `filename` fails in a Task, or in an `asyncio.gather` of it, that is
    collected unretrieved: asyncio then logs "<holder> exception was never retrieved", as for
    orbax's writes on a full disk."""
    namespace: dict = {}
    exec(compile(FAILING_WRITE, filename, "exec"), namespace)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # gather takes the current loop
    if holder == "Task":
        failed = loop.create_task(namespace["write"]())
    else:
        failed = asyncio.gather(namespace["write"]())
    loop.run_until_complete(asyncio.sleep(0.01))
    asyncio.set_event_loop(None)
    loop.close()
    del failed
    gc.collect()


@pytest.mark.parametrize("holder", ["Task", "_GatheringFuture"])
def test_after_a_failed_save_only_orbax_writes_unretrieved_failures_go_unreported(caplog, holder):
    hide_failed_write_echoes()
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        unretrieved_failure("/site-packages/orbax/checkpoint/_src/serialization/write.py", holder)
        assert not caplog.records
        unretrieved_failure("/elsewhere/mine.py", holder)
    assert [r.getMessage().splitlines()[0] for r in caplog.records] == [
        f"{holder} exception was never retrieved"
    ]


# In-process callers (here under pytest's unraisable hook) get none of the failed writes' echoes.
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_full_filesystem_stops_training_cleanly(uninterrupted, small_disk, capsys):
    run_dir = small_disk / "run"
    assert main(train_argv(run_dir, hidden="256")) == 1
    assert_stopped_for_space(capsys.readouterr().err, run_dir)


def test_a_dataset_the_disk_cannot_hold_is_refused_before_writing(small_disk, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(small_disk))
    dataset = "local/hopper-big-v0"
    argv = ["data", "collect", "--env", "Hopper-v5", "--steps", "30000", "--dataset-id", dataset]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"writing {dataset} needs about" in err and "MiB free" in err and "Traceback" not in err
    assert sorted(p.name for p in small_disk.iterdir()) == []


def test_an_out_on_a_read_only_disk_is_refused_before_anything_is_read(tmp_path, capsys):
    with tmpfs(tmp_path / "readonly", "ro,size=1m") as folder:
        assert main(train_argv(folder / "run")) == 1
    err = capsys.readouterr().err
    assert f"{folder} is not writable (permissions or a read-only disk)" in err
    assert "Traceback" not in err
