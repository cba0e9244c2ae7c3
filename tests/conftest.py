"""Shared fixtures: isolated dataset caches and small REAL datasets rolled out in MuJoCo envs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import h5py
import jax
import numpy as np
import pytest

from agents import TD3BC
from offrl.agent import Context
from offrl.data.collect import CollectInfo, collect
from offrl.data.registry import load_task
from offrl.train import FitResult, fit

HOPPER_DATASET_ID = "offrl-test/hopper-random-v0"
HOPPER_STEPS = 1500
D4RL_EPISODE_CAP = 30  # artificial time limit: random Hopper episodes often outlive it


def assert_trained_alike(ours, theirs, start, share: float = 1e-2) -> None:
    """Two programs trained the same function from `start`: pytrees of parameters, optimiser
    moments and keys that computed the same updates but rounded differently.

    Elementwise tolerances cannot be portable here: two float32 matmul libraries (or vmapped and
    single programs, or two CPUs) round sums differently, and Adam turns a rounding difference in
    a near-zero gradient into a whole step of that element, up to lr per update. So every tensor
    is compared as a whole: the gap between the two runs must stay within `share` of how far
    training moved the tensor from `start`. For 50 TD3+BC updates with Eigen against XLA's default
    dots the gap was at most 8e-5 of the distance moved on an AMD EPYC; the Intel failure of the
    old elementwise test (12 of 65,536 elements 2.1e-5 apart, in a tensor moved by about 1) is
    about 1e-4. One update more or less (49 against 50) already puts the actor's tensors 2-4% of
    that distance apart, so 1e-2 separates rounding from any real difference in the updates.
    Integer leaves (step counters, PRNG keys) must be equal.
    """
    leaves = zip(
        jax.tree.leaves(ours), jax.tree.leaves(theirs), jax.tree.leaves(start), strict=True
    )
    for index, (a, b, s) in enumerate(leaves):
        a, b, s = np.asarray(a), np.asarray(b), np.asarray(s)
        assert a.shape == b.shape == s.shape, (index, a.shape, b.shape, s.shape)
        if not np.issubdtype(a.dtype, np.floating):
            np.testing.assert_array_equal(a, b, err_msg=f"leaf {index}")
            continue
        gap = float(np.linalg.norm((a - b).astype(np.float64)))
        moved = float(np.linalg.norm((b - s).astype(np.float64)))
        assert gap <= share * moved, f"leaf {index} {a.shape}: gap {gap:.3g}, moved {moved:.3g}"


def batch_context(batch) -> Context:
    """The context of a batch that is its own table (rows 0..n-1): for agents that need none."""
    return Context(rows=jax.numpy.arange(batch.rewards.shape[0]))


@dataclass(frozen=True)
class DataDirs:
    minari: Path
    d4rl: Path
    cache: Path


@pytest.fixture(scope="session", autouse=True)
def data_dirs(tmp_path_factory) -> DataDirs:
    """Point the Minari cache, the D4RL folder and offrl's cache at session temp dirs."""
    dirs = DataDirs(*(tmp_path_factory.mktemp(name) for name in ("minari", "d4rl", "cache")))
    # Many tests (and the CLI processes they start) compile the same small programs: compile once.
    compiled = str(dirs.cache / "jax-compilation")
    jax.config.update("jax_compilation_cache_dir", compiled)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(dirs.minari))
        patch.setenv("D4RL_DATASET_DIR", str(dirs.d4rl))
        patch.setenv("OFFRL_CACHE_DIR", str(dirs.cache))
        patch.setenv("JAX_COMPILATION_CACHE_DIR", compiled)
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
        yield dirs


@pytest.fixture
def d4rl_dir(tmp_path, monkeypatch) -> Path:
    """A private, empty D4RL folder; HOME is moved too so ~/.d4rl/datasets is empty."""
    folder = tmp_path / "d4rl"
    folder.mkdir()
    monkeypatch.setenv("D4RL_DATASET_DIR", str(folder))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return folder


@pytest.fixture
def minari_dir(tmp_path, monkeypatch) -> Path:
    """A private, empty Minari cache for tests that write or break datasets."""
    folder = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(folder))
    return folder


@pytest.fixture(scope="session")
def hopper_dataset(data_dirs) -> CollectInfo:
    """A real random-policy Hopper-v5 Minari dataset in the session cache."""
    return collect("Hopper-v5", "random", HOPPER_STEPS, HOPPER_DATASET_ID, seed=0)


def d4rl_rollout(env_id: str, rows: int, episode_cap: int, seed: int) -> dict[str, np.ndarray]:
    """D4RL-schema arrays from a real env, one row per step as D4RL recorded them.

    Real terminals come from the env; episodes reaching `episode_cap` steps are cut and marked
    as timeouts. After an episode ends, the next row is the first step of a new episode.
    """
    env = gym.make(env_id)
    env.action_space.seed(seed)
    observation, _ = env.reset(seed=seed)
    keys = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
    columns: dict[str, list] = {key: [] for key in (*keys, "infos/qpos", "infos/qvel")}
    steps = 0
    for _ in range(rows):
        action = env.action_space.sample()
        columns["infos/qpos"].append(env.unwrapped.data.qpos.copy())
        columns["infos/qvel"].append(env.unwrapped.data.qvel.copy())
        next_observation, reward, terminated, _, _ = env.step(action)
        steps += 1
        timeout = steps == episode_cap and not terminated
        for key, value in zip(
            keys, (observation, action, reward, terminated, timeout, next_observation), strict=True
        ):
            columns[key].append(value)
        observation = next_observation
        if terminated or timeout:
            observation, _ = env.reset()
            steps = 0
    env.close()
    dtypes = {"observations": np.float32, "actions": np.float32, "rewards": np.float32}
    dtypes |= {"terminals": bool, "timeouts": bool, "next_observations": np.float32}
    return {key: np.asarray(values, dtype=dtypes.get(key)) for key, values in columns.items()}


def write_d4rl(path: Path, raw: dict[str, np.ndarray]) -> Path:
    """Write arrays under their keys (`infos/qpos` becomes a group), like D4RL's files."""
    with h5py.File(path, "w") as file:
        for key, value in raw.items():
            file.create_dataset(key, data=value)
    return path


@pytest.fixture(scope="session")
def hopper_raw() -> dict[str, np.ndarray]:
    """3000 real Hopper-v5 rows with real terminals and artificial timeouts."""
    raw = d4rl_rollout("Hopper-v5", 3000, D4RL_EPISODE_CAP, seed=1)
    assert raw["terminals"].sum() > 10 and raw["timeouts"].sum() > 10
    return raw


@pytest.fixture(scope="session")
def walker_raw() -> dict[str, np.ndarray]:
    """Real Walker2d-v5 rows: a file with these under a hopper name has the wrong dimensions."""
    return d4rl_rollout("Walker2d-v5", 300, D4RL_EPISODE_CAP, seed=2)


class PointGoalEnv(gym.Env):
    """A point mass pushed towards a goal on a plane: a minimal real goal-conditioned env."""

    def __init__(self):
        box = gym.spaces.Box(-10.0, 10.0, shape=(2,), dtype=np.float64)
        self.observation_space = gym.spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "observation": self.position.copy(),
            "achieved_goal": self.position.copy(),
            "desired_goal": self.goal.copy(),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1.0, 1.0, size=2)
        self.goal = self.np_random.uniform(-1.0, 1.0, size=2)
        return self._observation(), {}

    def step(self, action):
        self.position = np.clip(self.position + 0.2 * np.asarray(action), -10.0, 10.0)
        distance = float(np.linalg.norm(self.position - self.goal))
        return self._observation(), -distance, distance < 0.1, False, {}


POINT_GOAL_ENV_ID = "offrl-test/PointGoal-v0"
# pytest imports this file as the top-level module `conftest`, so the entry point resolves.
gym.register(POINT_GOAL_ENV_ID, entry_point="conftest:PointGoalEnv", max_episode_steps=25)


def logged_run(run_dir: Path, **loggers) -> FitResult:
    """The loggers' tests' run: small TD3+BC, seeds 3 and 4 on the test hopper data, losses every
    25 updates, evaluations at 50 and 100; `loggers` are fit's (tensorboard=, wandb=)."""
    loaded = load_task(f"minari/{HOPPER_DATASET_ID}")
    return fit(
        TD3BC,
        loaded.transitions,
        TD3BC.Config(hidden_dims=(64, 64), batch_size=64),
        seeds=[3, 4],
        steps=100,
        eval_every=50,
        eval_episodes=1,
        log_every=25,
        task=loaded.task,
        out_dir=run_dir,
        progress=False,
        **loggers,
    )
