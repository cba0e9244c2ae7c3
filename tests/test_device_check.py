"""The accelerator run prepared in benchmarks/device_check.sh, at toy sizes (TINY=1) on this
machine: every step runs and prints its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_device_check_runs_every_step_at_toy_sizes(tmp_path):
    env = {
        **os.environ,
        "TINY": "1",
        "PYTHON": sys.executable,
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
        "OFFRL_CACHE_DIR": str(tmp_path / "cache"),
        "OUT": str(tmp_path),
    }
    script = ROOT / "benchmarks" / "device_check.sh"
    done = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = (tmp_path / "device_check.log").read_text()
    for needle in (
        "devices:",
        "5x-vmap/seed",
        "a2pr vs td3bc: step time",
        "PRDC on offrl/hopper/medium-v0",
        "jax + candidates",
        "3 runs in one program",
        "6 runs in one program",
        "3 datasets x 2 seeds = 6 runs in one program",
        "the full protocol (1,000,000 updates per run)",
    ):
        assert needle in log, needle
