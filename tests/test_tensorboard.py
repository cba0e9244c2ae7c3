"""TensorBoard logging of a real run, read back from the event files tensorboardX wrote (TFRecord
framing around Event protos), one folder per seed."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from conftest import logged_run

from offrl.run_files import LOSSES, read_records

tensorboardX = pytest.importorskip("tensorboardX")
from tensorboardX.proto.event_pb2 import Event  # noqa: E402  (only where tensorboardX is)


def scalars(folder: Path) -> dict[int, dict[str, float]]:
    """step -> {tag: value} of every scalar in a folder's event files."""
    logged: dict[int, dict[str, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])  # after length and its crc
            at += 12 + length + 4  # and the data's crc
            for value in event.summary.value:
                logged.setdefault(event.step, {})[value.tag] = value.simple_value
    return logged


@pytest.fixture(scope="module")
def tensorboard_run(hopper_dataset, tmp_path_factory):
    return logged_run(tmp_path_factory.mktemp("tensorboard") / "run", tensorboard=True)


def test_each_seed_logs_its_losses_every_log_every_and_its_evaluations(tensorboard_run):
    folder = tensorboard_run.run_dir / "tensorboard"
    assert sorted(p.name for p in folder.iterdir()) == ["seed3", "seed4"]
    losses = read_records(tensorboard_run.run_dir, LOSSES)
    for seed in (3, 4):
        logged = scalars(folder / f"seed{seed}")
        assert sorted(logged) == [25, 50, 75, 100]
        for record in (r for r in losses if r["seed"] == seed):
            for name, value in record["losses"].items():
                # event files hold float32
                assert logged[record["step"]][f"train/{name}"] == pytest.approx(value, rel=1e-6)
        for record in (r for r in tensorboard_run.records if r["seed"] == seed):
            at = logged[record["step"]]
            for name in ("return", "return_std"):
                assert at[f"eval/{name}"] == pytest.approx(record[name], rel=1e-6)
            assert at["perf/updates_per_s"] == pytest.approx(record["updates_per_s"], rel=1e-6)
            # this dataset has no reference scores: no normalised score to log
            assert record["normalized_score"] is None and "eval/normalized_score" not in at
        assert "eval/return" not in logged[25] and "eval/return" not in logged[75]
