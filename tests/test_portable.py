"""Generated datasets are the same bytes on every x86-64 CPU (offrl.behavior.portable, offrl.libm).

The checksums below were made from the shipped policies on an AMD EPYC (AVX2) on 2026-12-05.
Sessions and CI run on AMD and on Intel AVX-512 machines, so a computation in the data path whose
rounding depends on the processor fails here on one of them. On one machine, other processors are
imitated by turning numpy's AVX2 kernels off, capping XLA at SSE4.2 and picking OpenBLAS's oldest
kernels: XLA-computed actions (rollout version 1) changed under the XLA cap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.datasets import remake_reason
from offrl.behavior import manifest, portable
from offrl.data import generate, recipes
from offrl.data.registry import load_task
from offrl.errors import DatasetError

MADE_ON_2026_12_05 = {
    ("offrl/hopper/medium-v0", 2000): (
        "ddd69586147c30d179f374fb28c620c9c80f6b65f3e93869e9142983b1979bee"
    ),
    ("offrl/hopper/random-v0", 2000): (
        "d9008afa2238c3b4d72ec9eb5e1ad3ffb4a0a9b3531f9c194cf4a2321ceeecc7"
    ),
    ("offrl/hopper/medium-replay-v0", 3000): (
        "69d6a64d3f11edf77e066c7ee1728ef77e2af34466a58ea887fad517e5ab5770"
    ),
    ("offrl/antmaze/umaze-v0", 2000): (
        "2398804ded16487c8648062d0572e2ac89962fe4f8d528731289bda84db20c76"
    ),
}
OTHER_KERNELS = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4",
    "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2",
    "OPENBLAS_CORETYPE": "Prescott",
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(("name", "size"), list(MADE_ON_2026_12_05))
def test_a_seed_makes_the_bytes_it_made_on_another_machine(cache, name, size):
    made = generate.make_dataset(name, 0, size)
    assert made.checksum == MADE_ON_2026_12_05[name, size], (
        f"{name} at {size} transitions has other bytes on this CPU "
        f"({os.uname().machine}): something in the data path rounds by processor"
    )


def test_other_vector_kernels_make_the_same_bytes(tmp_path):
    name, size = "offrl/hopper/medium-replay-v0", 3000
    script = (
        "from offrl.data import generate\n"
        f"print(generate.make_dataset({name!r}, 0, {size}).checksum)\n"
    )
    env = {**os.environ, **OTHER_KERNELS, "MINARI_DATASETS_PATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-1] == MADE_ON_2026_12_05[name, size]


def shipped_hopper_medium() -> tuple[portable.Actor, object, object]:
    entry = manifest.read_policy_manifest().envs["hopper"]
    params = manifest.load_actor(entry, entry.level_policy("medium"))
    module = manifest.actor_module(entry)
    return portable.Actor.of(module, params), module, params


def test_the_portable_actor_is_the_flax_actor_and_rows_never_mix():
    actor, module, params = shipped_hopper_medium()
    observations = np.random.default_rng(0).standard_normal((32, 11)).astype(np.float32)
    mean, log_std = actor(observations)
    flax_mean, flax_log_std = module.apply(params, observations)
    np.testing.assert_allclose(mean, flax_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_std, flax_log_std, rtol=1e-5, atol=1e-5)
    one_by_one = np.concatenate([actor(observations[[i]])[0] for i in range(32)])
    np.testing.assert_array_equal(one_by_one, mean)


def test_a_step_draws_the_same_noise_whoever_asks():
    first = portable.standard_normal(7, 3, (32, 3))
    np.testing.assert_array_equal(first, portable.standard_normal(7, 3, (32, 3)))
    assert not np.array_equal(first, portable.standard_normal(7, 4, (32, 3)))
    low, high = np.full((32, 3), -1.0), np.full((32, 3), 1.0)
    actions = portable.uniform(7, 3, low, high)
    assert ((actions >= -1.0) & (actions < 1.0)).all() and actions.std() > 0.3


def test_a_dataset_made_by_an_older_rollout_is_stale(cache):
    """Datasets made before rollout version 2 hold CPU-dependent bytes: load names the remake."""
    name = "offrl/hopper/random-v0"  # no policy files: only the version tells
    generate.make_dataset(name, 0, recipes.find_recipe(name).transitions // 500)
    metadata_file = cache / "offrl" / "hopper" / "random-v0" / "data" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    assert metadata.pop(recipes.ROLLOUT_VERSION_KEY) == recipes.ROLLOUT_VERSION
    assert not generate.is_stale(name)
    metadata_file.write_text(json.dumps(metadata))
    assert generate.is_stale(name)
    assert "by an older offrl" in remake_reason(name)
    with pytest.raises(DatasetError, match=f"`offrl data make {name} --overwrite`"):
        load_task(name)
