"""Task names -> (dataset source, evaluation env, reference scores), and validated loading.

A task name is `<source>/<dataset>`: `d4rl/hopper-medium-v2`, `minari/mujoco/hopper/medium-v0`,
`offrl/hopper/medium-v0` (an embedded dataset this project makes, stored in the Minari cache
under the same id). Each source is one `Source` entry (resolve, load, list, verify), so a new
prefix is one more entry.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from offrl.data import d4rl, generate, minari_io
from offrl.data.transitions import Transitions, checksum, from_numpy
from offrl.envs import ANTMAZE_ENV_IDS, make_env
from offrl.envs.families import FAMILIES, LOCOMOTION
from offrl.errors import DatasetError, OffrlError, UnknownTaskError

# D4RL env -> gymnasium evaluation env with the same observation layout as D4RL's mujoco-py envs.
D4RL_EVAL_ENVS: dict[str, tuple[str, dict]] = {
    name: FAMILIES[name].d4rl_eval_env for name in LOCOMOTION
}


def d4rl_eval_env(dataset: str) -> tuple[str, dict] | None:
    """The evaluation env (id, kwargs) of a D4RL dataset; None for maze2d, whose D4RL env has no
    port here (offrl/pointmaze/* is its generated counterpart)."""
    env = d4rl.LOCOMOTION_NAMES.get(dataset)
    if env is not None:
        return D4RL_EVAL_ENVS[env]
    if dataset in d4rl.ANTMAZE_NAMES:  # antmaze-<maze>[-play|-diverse]-v<n>
        return ANTMAZE_ENV_IDS[dataset.split("-")[1]], {}
    return None


@dataclass(frozen=True)
class Task:
    """A resolved task name: where its data comes from, how to evaluate and normalise."""

    name: str  # as typed: "d4rl/hopper-medium-v2", "minari/mujoco/hopper/medium-v0"
    source: str  # "d4rl" | "minari" | "offrl"
    env_spec: EnvSpec  # evaluation env, kwargs included
    ref_min_score: float | None
    ref_max_score: float | None

    @property
    def dataset(self) -> str:
        """The name within its source: "hopper-medium-v2", "mujoco/hopper/medium-v0"."""
        return self.name.partition("/")[2]

    def normalized_score(self, returns: np.ndarray) -> np.ndarray | None:
        """D4RL's 100 (R - min) / (max - min); None when the task has no reference scores."""
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        returns = np.asarray(returns, dtype=np.float64)
        return 100.0 * (returns - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


@dataclass(frozen=True)
class LoadedTask:
    """A task with its validated transitions (numpy float32, raw: not normalised)."""

    task: Task
    transitions: Transitions
    checksum: str  # transitions.checksum
    path: str  # file or folder read


@dataclass(frozen=True)
class Source:
    """One task-name prefix: resolve a dataset name cheaply, load its raw arrays, list names."""

    resolve: Callable[[str, str], Task]  # (task name, dataset name) -> Task
    load: Callable[[Task], tuple[dict[str, np.ndarray], Path]]  # validated arrays and the path
    names: Callable[[], list[str]]  # dataset names (without prefix) known right now
    verify: Callable[[Task, str], None] = lambda task, digest: None  # checksum -> DatasetError


def _env_spec(env_id: str, kwargs: Mapping) -> EnvSpec:
    """A private copy of a registered spec with extra kwargs (never mutate gym's registry)."""
    spec = gym.spec(env_id)
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs})


# No MuJoCo state or reward comes near it: a value this large is corrupt, and normalising by the
# column's mean and std would squash the rest of that column to a constant.
EXTREME = 1e6
# Slack on the action bounds for float rounding of stored actions (D4RL's are float32).
BOUND_SLACK = 1e-4


def _rows(bad: np.ndarray) -> np.ndarray:
    return np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))


def _column(bad: np.ndarray, array: np.ndarray) -> str:
    """The first offending column, with the range of its offending values."""
    if array.ndim == 1:
        values = array[bad]
        return f"values {values.min():.6g} to {values.max():.6g}"
    column = int(np.flatnonzero(bad.any(axis=0))[0])
    values = array[bad[:, column], column]
    return f"column {column}: {values.min():.6g} to {values.max():.6g}"


def check_values(
    arrays: Mapping[str, np.ndarray], where: str, describe_row: Callable[[int], str]
) -> None:
    """DatasetError naming the first array holding NaN or inf, or values beyond +-EXTREME: how
    many, in which column, their range and the first row."""
    for name, array in arrays.items():
        bad = ~np.isfinite(array)
        if bad.any():
            rows = _rows(bad)
            raise DatasetError(
                f"{where}: '{name}' holds {int(bad.sum())} NaN/inf value(s) in {rows.size} row(s), "
                f"first at {describe_row(int(rows[0]))}. The data is corrupt (or was recorded "
                "from a diverged policy): download or generate it again."
            )
        if name == "actions":
            continue  # checked against the env's bounds, which are tighter
        huge = np.abs(array) > EXTREME
        if huge.any():
            rows = _rows(huge)
            raise DatasetError(
                f"{where}: '{name}' holds {int(huge.sum())} value(s) beyond +-{EXTREME:g} in "
                f"{rows.size} row(s) ({_column(huge, array)}), first at "
                f"{describe_row(int(rows[0]))}. Normalised by the dataset's mean and std, that "
                "column would be a constant and training on it meaningless: remove those rows "
                "or fix the data."
            )


def check_against_env(
    arrays: Mapping[str, np.ndarray],
    task: Task,
    where: str,
    describe_row: Callable[[int], str],
) -> None:
    """The dataset's observation/action widths must match the evaluation env's, and its actions
    must lie within the env's action bounds."""
    try:
        env = make_env(task.env_spec)
    except (gym.error.Error, ImportError) as error:
        raise OffrlError(
            f"The evaluation environment {task.env_spec.id} of task {task.name} cannot be created "
            f"({error}). Install the package that provides it (mazes and other robotics envs "
            "come from gymnasium-robotics)."
        ) from error
    try:
        space = env.action_space
        expected = (int(np.prod(env.observation_space.shape)), int(np.prod(space.shape)))
    finally:
        env.close()
    found = (arrays["observations"].shape[1], arrays["actions"].shape[1])
    if found != expected:
        raise DatasetError(
            f"{where} holds observations of dimension {found[0]} and actions of dimension "
            f"{found[1]}, but task {task.name} is evaluated in {task.env_spec.id}, which has "
            f"{expected[0]} and {expected[1]}. The data belongs to another environment (a wrong "
            "or renamed file?): use the dataset that matches the task name."
        )
    actions = arrays["actions"]
    low, high = np.ravel(space.low), np.ravel(space.high)
    outside = (actions < low - BOUND_SLACK) | (actions > high + BOUND_SLACK)
    if outside.any():
        rows = _rows(outside)
        raise DatasetError(
            f"{where}: {rows.size} of {len(actions)} actions lie outside the action bounds of "
            f"{task.env_spec.id} ([{low.min():g}, {high.max():g}]; {_column(outside, actions)}), "
            f"first at {describe_row(int(rows[0]))}. The policy is squashed into those bounds, "
            "so it could never imitate them: the data belongs to another environment or was "
            "recorded unclipped; clip its actions to the bounds or use the matching task."
        )


# --- d4rl/<name> ---------------------------------------------------------------------------


def _resolve_d4rl(name: str, dataset: str) -> Task:
    if dataset not in d4rl.D4RL_REF_SCORES:
        raise _unknown(name)
    eval_env = d4rl_eval_env(dataset)
    if eval_env is None:
        raise OffrlError(
            f"Task {name} is a known D4RL dataset (reference scores "
            f"{d4rl.D4RL_REF_SCORES[dataset]}), but D4RL's maze2d environment has no port here, "
            "so it cannot be evaluated. Use offrl/pointmaze/umaze-v0 (D4RL's maze2d protocol, "
            "generated here) or a locomotion or antmaze task."
        )
    ref_min, ref_max = d4rl.D4RL_REF_SCORES[dataset]
    return Task(name, "d4rl", _env_spec(*eval_env), ref_min, ref_max)


def _missing_d4rl(task: Task) -> DatasetError:
    searched = "\n".join(f"  {path}" for path in d4rl.d4rl_candidate_paths(task.dataset))
    url = d4rl.download_url(task.dataset)
    origin = f" (originally {url})" if url else ""
    where = (
        f"D4RL dataset file for {task.name} not found. Looked for:\n{searched}\n"
        f"Download it from a D4RL mirror{origin} into $D4RL_DATASET_DIR or ~/.d4rl/datasets "
        "under a name above, or "
    )
    if task.dataset in d4rl.ANTMAZE_NAMES:
        generated = f"offrl/antmaze/{task.dataset.split('-v')[0].removeprefix('antmaze-')}-v0"
        return DatasetError(
            f"{where}train on its D4RL-protocol counterpart generated here: `offrl data make "
            f"{generated}`, then --task {generated}."
        )
    quick = f"local/{d4rl.LOCOMOTION_NAMES[task.dataset]}-random-v0"
    return DatasetError(
        f"{where}generate a quick real dataset with "
        f"`offrl data collect --env {task.env_spec.id} --policy random --steps 100000 "
        f"--dataset-id {quick}` and train on minari/{quick}."
    )


def _load_d4rl(task: Task) -> tuple[dict[str, np.ndarray], Path]:
    path = d4rl.find_d4rl_file(task.dataset)
    if path is None:
        raise _missing_d4rl(task)
    raw = d4rl.read_d4rl_file(path)
    per_row = ("observations", "actions", "rewards", "next_observations")
    check_values({k: raw[k] for k in per_row if k in raw}, str(path), "row {}".format)
    check_against_env(raw, task, str(path), "row {}".format)
    return d4rl.qlearning_dataset(raw, d4rl.D4RL_MAX_EPISODE_STEPS[task.dataset]), path


# --- minari/<dataset id> -------------------------------------------------------------------


def _resolve_minari(name: str, dataset_id: str) -> Task:
    try:
        info = minari_io.read_minari_info(dataset_id)
    except DatasetError as error:
        close = _close_names(name)
        hint = f"\nKnown tasks with close names: {', '.join(close)}." if close else ""
        raise DatasetError(f"{error}{hint}") from error
    if info.eval_env_spec is None:
        raise DatasetError(
            f"Minari dataset '{dataset_id}' at {info.path} stores no environment spec, so offrl "
            "cannot evaluate on it: recreate it with an `env`/`eval_env` given to minari."
        )
    return Task(name, "minari", info.eval_env_spec, info.ref_min_score, info.ref_max_score)


def _episode_step(lengths: np.ndarray, ids: np.ndarray) -> Callable[[int], str]:
    """Transition index -> 'episode <id>, step <t>', for error messages."""
    ends = np.cumsum(lengths)

    def describe(row: int) -> str:
        episode = int(np.searchsorted(ends, row, side="right"))
        return f"episode {ids[episode]}, step {row - (ends[episode] - lengths[episode])}"

    return describe


def minari_id(task: Task) -> str:
    """The Minari id a minari/ or offrl/ task is stored under."""
    return task.name if task.source == "offrl" else task.dataset


def remake_hint(dataset_id: str) -> str:
    """How to replace a cached Minari dataset: `offrl data make` for the embedded ones."""
    if dataset_id in generate.recipes():
        return f"`offrl data make {dataset_id} --overwrite`"
    return "delete the folder and download or generate it again"


def _load_minari(task: Task) -> tuple[dict[str, np.ndarray], Path]:
    data = minari_io.load_minari_arrays(minari_id(task))
    path = minari_io.minari_dataset_path(minari_id(task))
    checked = ("observations", "actions", "rewards", "next_observations")
    describe = _episode_step(data.episode_lengths, data.episode_ids)
    check_values({k: data.arrays[k] for k in checked}, f"Minari dataset {path}", describe)
    check_against_env(data.arrays, task, f"Minari dataset {path}", describe)
    return data.arrays, path


def _verify_minari(task: Task, digest: str) -> None:
    """Compare with the checksum recorded at writing (if any); remember the result."""
    info = minari_io.read_minari_info(minari_id(task))
    expected = info.metadata.get(minari_io.CHECKSUM_KEY)
    if expected is None:
        return
    minari_io.record_check(info.dataset_id, expected, ok=digest == expected)
    if digest != expected:
        raise DatasetError(
            f"Minari dataset {info.path / 'data'} does not hold the data it was written with: "
            f"its transitions have checksum {digest}, its metadata records {expected}. The file "
            f"was modified or is corrupt; replace it with {remake_hint(info.dataset_id)}."
        )


def _minari_names() -> list[str]:
    """Cached Minari datasets, except embedded ones (listed as offrl/...)."""
    embedded = generate.recipes()
    return [name for name in minari_io.local_dataset_ids() if name not in embedded]


# --- offrl/<env>/<level>-v0 ------------------------------------------------------------------


def _resolve_generated(name: str, dataset: str) -> Task:
    try:
        recipe = generate.find_recipe(name)
    except UnknownTaskError:
        raise _unknown(name) from None
    refs = (None, None)  # known once made: measuring them is part of making the dataset
    if (minari_io.minari_dataset_path(name) / "data" / "metadata.json").is_file():
        info = minari_io.read_minari_info(name)
        refs = (info.ref_min_score, info.ref_max_score)
    return Task(name, "offrl", recipe.env_spec, *refs)


def _load_generated(task: Task) -> tuple[dict[str, np.ndarray], Path]:
    path = minari_io.minari_dataset_path(task.name)
    if not (path / "data" / "metadata.json").is_file():
        raise DatasetError(
            f"Embedded dataset {task.name} has not been made on this machine (looked for "
            f"{path / 'data'}; Minari cache root from $MINARI_DATASETS_PATH, else "
            f"~/.minari/datasets). Make it with `offrl data make {task.name}` (a few minutes, no "
            "network), or `offrl data make --all` for the whole suite."
        )
    if generate.is_stale(task.name):
        raise DatasetError(generate.stale_hint(task.name))
    return _load_minari(task)


SOURCES: dict[str, Source] = {
    "d4rl": Source(_resolve_d4rl, _load_d4rl, lambda: sorted(d4rl.D4RL_REF_SCORES)),
    "minari": Source(_resolve_minari, _load_minari, _minari_names, _verify_minari),
    "offrl": Source(
        _resolve_generated,
        _load_generated,
        lambda: [name.partition("/")[2] for name in generate.recipes()],
        _verify_minari,
    ),
}


# --- public API ----------------------------------------------------------------------------


def known_task_names() -> list[str]:
    """Every known task name: all D4RL names (maze2d listed but not evaluable here),
    the datasets in the local Minari cache and the embedded (offrl/) suite, made or not."""
    return [f"{prefix}/{name}" for prefix, source in SOURCES.items() for name in source.names()]


def _close_names(name: str) -> list[str]:
    """Up to three known names close to `name`, also matching names typed without the prefix."""
    by_key: dict[str, str] = {}
    for full in known_task_names():
        by_key[full] = full
        by_key.setdefault(full.partition("/")[2], full)
    matches = difflib.get_close_matches(name, list(by_key), n=6, cutoff=0.6)
    return list(dict.fromkeys(by_key[m] for m in matches))[:3]


def _unknown(name: str) -> UnknownTaskError:
    close = _close_names(name)
    hint = f"Did you mean: {', '.join(close)}?" if close else "No known name is close."
    prefixes = ", ".join(f"{prefix}/..." for prefix in SOURCES)
    return UnknownTaskError(
        f"Unknown task '{name}'. {hint} Task names look like {prefixes}; "
        "`offrl data list` shows every known task."
    )


def resolve_task(name: str) -> Task:
    """Task for a name, cheaply (no dataset read). UnknownTaskError suggests close names."""
    prefix, _, dataset = name.partition("/")
    source = SOURCES.get(prefix)
    if source is None or not dataset:
        raise _unknown(name)
    return source.resolve(name, dataset)


def load_task(name: str) -> LoadedTask:
    """Resolve, read and validate (keys, lengths, NaN/inf and extreme values, dimensions, action
    bounds, the checksum recorded at writing) a task's transitions."""
    task = resolve_task(name)
    source = SOURCES[task.source]
    arrays, path = source.load(task)
    transitions = from_numpy(arrays)
    digest = checksum(transitions)
    source.verify(task, digest)
    return LoadedTask(task, transitions, digest, str(path))
