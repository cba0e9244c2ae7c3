"""D4RL hdf5 datasets: reference scores, episode limits, file lookup, reader and qlearning_dataset.

Mirrors `d4rl/infos.py`, the environments' registration code and `d4rl.qlearning_dataset`
(Farama-Foundation/D4RL @ 89141a6) without importing d4rl or mujoco-py.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from offrl.envs.families import FAMILIES, LOCOMOTION
from offrl.errors import DatasetError

LOCOMOTION_ENVS = LOCOMOTION
# full-replay exists only from -v1 on: d4rl/infos.py registers no `*-full-replay-v0`.
LOCOMOTION_DATASETS_V0 = ("random", "medium", "expert", "medium-replay", "medium-expert")
LOCOMOTION_DATASETS = (*LOCOMOTION_DATASETS_V0, "full-replay")
ANTMAZE_MAZES = (
    "umaze",
    "umaze-diverse",
    "medium-play",
    "medium-diverse",
    "large-play",
    "large-diverse",
)

# Every dataset of an env shares the `<env>-random-v0` pair (infos.py copies it in a loop).
_LOCOMOTION_REF = {name: FAMILIES[name].d4rl_reference for name in LOCOMOTION_ENVS}
_MAZE2D_REF = {
    "maze2d-open-v0": (0.01, 20.66),
    "maze2d-umaze-v1": (23.85, 161.86),
    "maze2d-medium-v1": (13.13, 277.39),
    "maze2d-large-v1": (6.7, 273.99),
    "maze2d-open-dense-v0": (11.17817, 27.166538620695782),
    "maze2d-umaze-dense-v1": (68.537689, 193.66285642381482),
    "maze2d-medium-dense-v1": (44.264742, 297.4552547777125),
    "maze2d-large-dense-v1": (30.569041, 303.4857382709002),
}
_MAZE2D_LIMITS = {"open": 150, "umaze": 300, "medium": 600, "large": 800}


def _locomotion_names() -> dict[str, str]:
    """D4RL locomotion dataset name -> its environment, for -v0, -v1 and -v2."""
    names = {f"{env}-{d}-v0": env for env in LOCOMOTION_ENVS for d in LOCOMOTION_DATASETS_V0}
    for version in (1, 2):
        names |= {
            f"{env}-{d}-v{version}": env for env in LOCOMOTION_ENVS for d in LOCOMOTION_DATASETS
        }
    return names


LOCOMOTION_NAMES: dict[str, str] = _locomotion_names()
ANTMAZE_NAMES = tuple(f"antmaze-{maze}-v{v}" for v in (0, 2) for maze in ANTMAZE_MAZES)
MAZE2D_NAMES = tuple(_MAZE2D_REF)

D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    **{name: _LOCOMOTION_REF[env] for name, env in LOCOMOTION_NAMES.items()},
    **dict.fromkeys(ANTMAZE_NAMES, (0.0, 1.0)),
    **_MAZE2D_REF,
}
"""D4RL REF_MIN_SCORE / REF_MAX_SCORE per dataset name: normalised = 100 (R - min) / (max - min)."""

D4RL_MAX_EPISODE_STEPS: dict[str, int] = {
    **dict.fromkeys(LOCOMOTION_NAMES, 1000),
    **{name: 700 if "umaze" in name else 1000 for name in ANTMAZE_NAMES},
    **{name: _MAZE2D_LIMITS[name.split("-")[1]] for name in MAZE2D_NAMES},
}
"""Episode limit of each dataset's D4RL environment: qlearning_dataset's timeouts for old files."""

_D4RL_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl"


def _download_filename(name: str) -> str | None:
    """File name under which d4rl itself downloads a locomotion dataset into ~/.d4rl/datasets."""
    env = LOCOMOTION_NAMES.get(name)
    if env is None:
        return None
    dataset, version = name[len(env) + 1 :].rsplit("-v", 1)
    if version != "0":
        return f"{env}_{dataset.replace('-', '_')}-v{version}.hdf5"
    # -v0 files carry no version and call medium-replay "mixed" (walker2d's file is walker_mixed).
    if dataset == "medium-replay":
        return "walker_mixed.hdf5" if env == "walker2d" else f"{env}_mixed.hdf5"
    return f"{env}_{dataset.replace('-', '_')}.hdf5"


def download_url(name: str) -> str | None:
    """The original D4RL URL of a locomotion dataset (mirrors keep the same file name)."""
    filename = _download_filename(name)
    if filename is None:
        return None
    version = name.rsplit("-v", 1)[1]
    folder = "gym_mujoco" if version == "0" else f"gym_mujoco_v{version}"
    return f"{_D4RL_URL}/{folder}/{filename}"


def d4rl_search_dirs() -> list[Path]:
    """Folders searched for D4RL files: $D4RL_DATASET_DIR (read now), then ~/.d4rl/datasets."""
    dirs = []
    if env_dir := os.environ.get("D4RL_DATASET_DIR"):
        dirs.append(Path(env_dir).expanduser())
    dirs.append(Path("~/.d4rl/datasets").expanduser())
    return dirs


def d4rl_candidate_paths(name: str) -> list[Path]:
    """Every path tried for a dataset, in order: `<name>.hdf5`, then d4rl's own download name."""
    filenames = [f"{name}.hdf5"]
    if (download_name := _download_filename(name)) is not None:
        filenames.append(download_name)
    return [folder / filename for folder in d4rl_search_dirs() for filename in filenames]


def find_d4rl_file(name: str) -> Path | None:
    """First existing candidate path of a D4RL dataset, or None."""
    return next((path for path in d4rl_candidate_paths(name) if path.is_file()), None)


REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "next_observations")
_PER_ROW_KEYS = (*REQUIRED_KEYS, *OPTIONAL_KEYS)
_FLAG_KEYS = ("rewards", "terminals", "timeouts")


def _dataset_keys(file: h5py.File) -> list[str]:
    """Paths of every dataset in the file (`infos/qpos`, ...), as d4rl's get_keys lists them."""
    keys: list[str] = []

    def visit(name: str, item: h5py.HLObject) -> None:
        if isinstance(item, h5py.Dataset):
            keys.append(name)

    file.visititems(visit)
    return keys


def _check_shapes(raw: dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Squeeze (N, 1) flags like d4rl does; require 2-D observations/actions and one row count."""
    raw = dict(raw)
    for key in _FLAG_KEYS:
        if key in raw and raw[key].ndim == 2 and raw[key].shape[1] == 1:
            raw[key] = raw[key][:, 0]
    present = [key for key in _PER_ROW_KEYS if key in raw]
    lengths = {key: raw[key].shape[0] if raw[key].ndim else 0 for key in present}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{key} {n}" for key, n in lengths.items())
        raise DatasetError(
            f"{path}: arrays have different lengths ({listed}); every array needs one row per "
            "step. The file is truncated or was written incorrectly: download or generate it again."
        )
    expected_ndim = {"observations": 2, "actions": 2, "next_observations": 2}
    for key in lengths:
        ndim = expected_ndim.get(key, 1)
        if raw[key].ndim != ndim:
            raise DatasetError(
                f"{path}: '{key}' has shape {raw[key].shape}, expected {ndim} dimension(s) "
                "(rows first). The file does not follow the D4RL schema."
            )
    if lengths["observations"] < 2:
        raise DatasetError(f"{path}: holds {lengths['observations']} rows; at least 2 are needed.")
    return raw


def read_d4rl_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a D4RL-schema hdf5 file: the four required arrays, optional timeouts/next_observations,
    and every `infos/*` array. Flags of shape (N, 1) are squeezed to (N,) as d4rl does.

    Raises DatasetError when the file is unreadable, lacks keys or has inconsistent shapes.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            keys = _dataset_keys(file)
            missing = [key for key in REQUIRED_KEYS if key not in keys]
            if missing:
                raise DatasetError(
                    f"{path} lacks the key(s) {', '.join(missing)} (it has: {', '.join(keys)}). "
                    f"A D4RL file needs {', '.join(REQUIRED_KEYS)} (timeouts optional): this is "
                    "not a D4RL dataset, or an incomplete one; download or generate it again."
                )
            wanted = [key for key in keys if key in _PER_ROW_KEYS or key.startswith("infos/")]
            raw = {key: file[key][()] for key in wanted}
    except (OSError, RuntimeError) as error:
        raise DatasetError(
            f"{path} cannot be read as an HDF5 file ({error}). It is probably truncated or "
            "corrupt (an interrupted download or copy): delete it and download or generate it "
            "again."
        ) from error
    return _check_shapes(raw, path)


def timeouts_from_episode_limit(terminals: np.ndarray, max_episode_steps: int) -> np.ndarray:
    """The rows d4rl's qlearning_dataset treats as time-outs when a file has no `timeouts` array.

    d4rl counts steps, treats step `max_episode_steps - 1` as the time-out (reset to 0), and after
    a terminal resets the counter to 0 then increments it (so the next row counts as step 1).
    A terminal that falls on a time-out row is ignored. The loop runs over terminals, not rows.
    """
    if max_episode_steps < 2:
        raise ValueError(f"max_episode_steps must be at least 2, got {max_episode_steps}")
    n_rows = terminals.shape[0] - 1  # qlearning_dataset never looks at the last row
    timeouts = np.zeros(terminals.shape[0], dtype=bool)
    start, first_timeout = 0, max_episode_steps - 1  # block start and its first time-out offset
    for t in np.flatnonzero(terminals[:n_rows]):
        offset = t - start - first_timeout
        if offset >= 0 and offset % max_episode_steps == 0:
            continue  # the time-out wins: this terminal is dropped with its row
        timeouts[start + first_timeout : t : max_episode_steps] = True
        start, first_timeout = t + 1, max_episode_steps - 2
    timeouts[start + first_timeout : n_rows : max_episode_steps] = True
    return timeouts


def qlearning_dataset(
    raw: dict[str, np.ndarray], max_episode_steps: int | None = None
) -> dict[str, np.ndarray]:
    """Transitions with exactly d4rl.qlearning_dataset's semantics, vectorised.

    Row i (i = 0..N-2) becomes (observations[i], actions[i], rewards[i], observations[i+1],
    terminals[i]); a stored `next_observations` array is ignored; rows whose `timeouts[i]` is
    true are dropped; the last row is never emitted. Without `timeouts`, time-outs are derived
    from `max_episode_steps` like d4rl does. Returns float32 arrays keyed like `Transitions`
    (the terminal flag as `dones`).
    """
    n = raw["rewards"].shape[0]
    terminals = np.asarray(raw["terminals"]).reshape(n).astype(bool)
    if "timeouts" in raw:
        timeouts = np.asarray(raw["timeouts"]).reshape(n).astype(bool)
    elif max_episode_steps is None:
        raise DatasetError(
            "The dataset has no 'timeouts' array: pass max_episode_steps (the D4RL env's episode "
            "limit, see D4RL_MAX_EPISODE_STEPS) so time-outs can be derived as d4rl does."
        )
    else:
        timeouts = timeouts_from_episode_limit(terminals, max_episode_steps)
    rows = np.flatnonzero(~timeouts[:-1])
    observations = raw["observations"]
    return {
        "observations": observations[rows].astype(np.float32),
        "actions": raw["actions"][rows].astype(np.float32),
        "rewards": np.asarray(raw["rewards"]).reshape(n)[rows].astype(np.float32),
        "next_observations": observations[rows + 1].astype(np.float32),
        "dones": terminals[rows].astype(np.float32),
    }
