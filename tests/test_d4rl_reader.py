"""D4RL reader and qlearning_dataset, on D4RL-schema files written from real Hopper rollouts."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_d4rl

from offrl.data import d4rl
from offrl.data.registry import load_task, resolve_task
from offrl.data.transitions import checksum, from_numpy
from offrl.errors import DatasetError

TASK = "d4rl/hopper-random-v2"


def reference_qlearning_dataset(dataset: dict, max_episode_steps: int) -> dict[str, np.ndarray]:
    """d4rl.qlearning_dataset (D4RL @ 89141a6, terminate_on_end=False), loop kept as written."""
    n = dataset["rewards"].shape[0]
    obs_, next_obs_, action_, reward_, done_ = [], [], [], [], []
    use_timeouts = "timeouts" in dataset
    episode_step = 0
    for i in range(n - 1):
        obs = dataset["observations"][i].astype(np.float32)
        new_obs = dataset["observations"][i + 1].astype(np.float32)
        action = dataset["actions"][i].astype(np.float32)
        reward = dataset["rewards"][i].astype(np.float32)
        done_bool = bool(dataset["terminals"][i])
        if use_timeouts:
            final_timestep = dataset["timeouts"][i]
        else:
            final_timestep = episode_step == max_episode_steps - 1
        if final_timestep:
            episode_step = 0
            continue
        if done_bool or final_timestep:
            episode_step = 0
        obs_.append(obs)
        next_obs_.append(new_obs)
        action_.append(action)
        reward_.append(reward)
        done_.append(done_bool)
        episode_step += 1
    return {
        "observations": np.array(obs_),
        "actions": np.array(action_),
        "next_observations": np.array(next_obs_),
        "rewards": np.array(reward_),
        "dones": np.array(done_, dtype=np.float32),
    }


def assert_same(ours: dict, reference: dict) -> None:
    for key, expected in reference.items():
        np.testing.assert_array_equal(ours[key], expected, err_msg=key)
        assert ours[key].dtype == np.float32, key


def test_matches_d4rl_loop_with_timeouts(hopper_raw):
    assert_same(d4rl.qlearning_dataset(hopper_raw), reference_qlearning_dataset(hopper_raw, 1000))


@pytest.mark.parametrize("max_episode_steps", [2, 5, 13, 30, 1000])
def test_matches_d4rl_loop_without_timeouts(hopper_raw, max_episode_steps):
    raw = {k: v for k, v in hopper_raw.items() if k != "timeouts"}
    ours = d4rl.qlearning_dataset(raw, max_episode_steps)
    assert_same(ours, reference_qlearning_dataset(raw, max_episode_steps))


def test_semantics_on_real_rollout(hopper_raw):
    """Timeouts dropped, next obs = next row, terminals -> done, last row never emitted."""
    raw = hopper_raw
    out = d4rl.qlearning_dataset(raw)
    rows = np.flatnonzero(~raw["timeouts"][:-1])
    n = raw["rewards"].shape[0]
    assert out["rewards"].shape[0] == (n - 1) - raw["timeouts"][:-1].sum()
    np.testing.assert_array_equal(out["observations"], raw["observations"][rows])
    # The next row, not the stored next_observations (they differ after every terminal).
    np.testing.assert_array_equal(out["next_observations"], raw["observations"][rows + 1])
    np.testing.assert_array_equal(out["dones"], raw["terminals"][rows])
    assert out["dones"].sum() == raw["terminals"][:-1].sum()  # no terminal sits on a timeout row
    assert not np.isin(np.flatnonzero(raw["timeouts"][:-1]), rows).any()
    assert rows[-1] <= n - 2  # row N-1 has no next row, so it is never a transition


def test_last_row_dropped_even_when_terminal(hopper_raw):
    raw = {k: v[:200].copy() for k, v in hopper_raw.items()}
    raw["terminals"][-1], raw["timeouts"][-1] = True, False
    out = d4rl.qlearning_dataset(raw)
    assert out["rewards"].shape[0] == 199 - raw["timeouts"][:-1].sum()


def test_rewards_and_terminals_of_shape_n_by_1_are_squeezed(d4rl_dir, hopper_raw):
    raw = dict(hopper_raw, rewards=hopper_raw["rewards"][:, None])
    raw["terminals"] = hopper_raw["terminals"][:, None]
    read = d4rl.read_d4rl_file(write_d4rl(d4rl_dir / "x.hdf5", raw))
    assert read["rewards"].shape == read["terminals"].shape == (3000,)
    assert "infos/qpos" in read and read["infos/qpos"].shape[0] == 3000


def test_load_task_reads_file_from_env_dir(d4rl_dir, hopper_raw):
    path = write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", hopper_raw)
    loaded = load_task(TASK)
    expected = from_numpy(d4rl.qlearning_dataset(hopper_raw))
    assert loaded.path == str(path)
    assert loaded.checksum == checksum(expected)
    assert loaded.transitions.observations.dtype == np.float32
    assert loaded.task.env_spec.id == "Hopper-v5"


def test_d4rl_download_filename_in_home_cache(d4rl_dir, hopper_raw, tmp_path):
    cache = tmp_path / "home" / ".d4rl" / "datasets"
    cache.mkdir(parents=True)
    path = write_d4rl(cache / "hopper_medium_replay-v2.hdf5", hopper_raw)
    assert load_task("d4rl/hopper-medium-replay-v2").path == str(path)
    assert d4rl.download_url("hopper-medium-replay-v2").endswith(
        "gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    )
    assert d4rl.download_url("walker2d-medium-replay-v0").endswith("gym_mujoco/walker_mixed.hdf5")


def test_env_dir_is_read_at_call_time(d4rl_dir, hopper_raw, tmp_path, monkeypatch):
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", hopper_raw)
    assert d4rl.find_d4rl_file("hopper-random-v2") is not None
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "elsewhere"))
    assert d4rl.find_d4rl_file("hopper-random-v2") is None


def test_reference_scores_and_normalized_score():
    assert d4rl.D4RL_REF_SCORES["hopper-medium-v2"] == (-20.272305, 3234.3)
    assert d4rl.D4RL_REF_SCORES["halfcheetah-full-replay-v1"] == (-280.178953, 12135.0)
    assert d4rl.D4RL_REF_SCORES["walker2d-medium-expert-v0"] == (1.629008, 4592.3)
    assert d4rl.D4RL_REF_SCORES["ant-expert-v2"] == (-325.6, 3879.7)
    assert d4rl.D4RL_REF_SCORES["antmaze-large-diverse-v2"] == (0.0, 1.0)
    assert d4rl.D4RL_REF_SCORES["maze2d-large-dense-v1"] == (30.569041, 303.4857382709002)
    assert "hopper-full-replay-v0" not in d4rl.D4RL_REF_SCORES  # d4rl registers no such dataset
    assert len(d4rl.D4RL_REF_SCORES) == 4 * 5 + 4 * 6 * 2 + 12 + 8
    assert set(d4rl.D4RL_MAX_EPISODE_STEPS) == set(d4rl.D4RL_REF_SCORES)
    limits = d4rl.D4RL_MAX_EPISODE_STEPS
    assert limits["hopper-medium-v2"] == limits["antmaze-large-play-v0"] == 1000
    assert limits["antmaze-umaze-diverse-v2"] == 700
    assert (limits["maze2d-open-v0"], limits["maze2d-umaze-dense-v1"]) == (150, 300)
    task = resolve_task("d4rl/hopper-medium-v2")
    scores = task.normalized_score(np.array([-20.272305, 3234.3, 1607.0138475]))
    np.testing.assert_allclose(scores, [0.0, 100.0, 50.0])


# --- bad input: one clear DatasetError each -------------------------------------------------


def test_missing_file_lists_every_place_searched(d4rl_dir, tmp_path):
    with pytest.raises(DatasetError) as error:
        load_task("d4rl/hopper-medium-v2")
    message = str(error.value)
    assert str(d4rl_dir / "hopper-medium-v2.hdf5") in message
    assert str(tmp_path / "home" / ".d4rl" / "datasets" / "hopper_medium-v2.hdf5") in message
    assert "D4RL mirror" in message
    assert "offrl data collect --env Hopper-v5 --policy random" in message
    assert "minari/local/hopper-random-v0" in message


def test_truncated_file(d4rl_dir, hopper_raw):
    path = write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", hopper_raw)
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size // 2)
    with pytest.raises(DatasetError, match=r"cannot be read as an HDF5 file.*truncated or corrupt"):
        load_task(TASK)


def test_not_an_hdf5_file(d4rl_dir):
    (d4rl_dir / "hopper-random-v2.hdf5").write_text("<html>404 Not Found</html>")
    with pytest.raises(DatasetError, match="cannot be read as an HDF5 file"):
        load_task(TASK)


def test_missing_keys_are_named(d4rl_dir, hopper_raw):
    raw = {k: v for k, v in hopper_raw.items() if k not in ("terminals", "actions")}
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", raw)
    with pytest.raises(DatasetError, match=r"lacks the key\(s\) actions, terminals"):
        load_task(TASK)


def test_arrays_of_different_lengths(d4rl_dir, hopper_raw):
    short = dict(hopper_raw, actions=hopper_raw["actions"][:-5])
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", short)
    with pytest.raises(DatasetError, match=r"different lengths.*actions 2995"):
        load_task(TASK)


@pytest.mark.parametrize(
    ("key", "value", "first"),
    [("actions", np.nan, 17), ("rewards", np.inf, 2990), ("observations", -np.inf, 0)],
)
def test_non_finite_values_are_located(d4rl_dir, hopper_raw, key, value, first):
    array = hopper_raw[key].copy()
    array[first] = value  # whole row for 2-D arrays
    array[first + 3] = value
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", dict(hopper_raw, **{key: array}))
    count = 2 * (array.shape[1] if array.ndim == 2 else 1)
    expected = rf"'{key}' holds {count} NaN/inf.*first at row {first}\."
    with pytest.raises(DatasetError, match=expected):
        load_task(TASK)


def test_walker_data_in_a_hopper_file(d4rl_dir, walker_raw):
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", walker_raw)
    with pytest.raises(DatasetError) as error:
        load_task(TASK)
    message = str(error.value)
    assert "dimension 17" in message and "dimension 6" in message
    assert "Hopper-v5" in message and "11 and 3" in message


def test_failed_load_writes_nothing(d4rl_dir, hopper_raw):
    short = dict(hopper_raw, rewards=hopper_raw["rewards"][:9])
    write_d4rl(d4rl_dir / "hopper-random-v2.hdf5", short)
    before = sorted(p.name for p in d4rl_dir.iterdir())
    with pytest.raises(DatasetError):
        load_task(TASK)
    assert sorted(p.name for p in d4rl_dir.iterdir()) == before
