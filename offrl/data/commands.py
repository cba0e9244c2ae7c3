"""The `offrl data` verbs as plain functions returning text; bad input raises OffrlError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from offrl.data import d4rl, generate, minari_io
from offrl.data.collect import collect
from offrl.data.registry import SOURCES, d4rl_eval_env, load_task, minari_id
from offrl.data.transitions import episode_returns
from offrl.errors import ConfigError, DatasetError, OffrlError


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    head = "  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))
    return "\n".join([head.rstrip(), *(line.rstrip() for line in lines)])


def _megabytes(path: Path) -> str:
    """Size of a file, or of every file under a folder."""
    files = path.rglob("*") if path.is_dir() else [path]
    return f"{sum(p.stat().st_size for p in files if p.is_file()) / 1e6:.1f} MB"


def _d4rl_rows(path: Path) -> str:
    """Row count from the hdf5 header alone (cheap), or why it cannot be read."""
    try:
        with h5py.File(path, "r") as file:
            return f"{file['rewards'].shape[0]:,} rows"
    except (OSError, KeyError):
        return "unreadable"


def _ref(value: float | None) -> str:
    return "-" if value is None else f"{value:.10g}"


def _cached_row(task_name: str, dataset_id: str, source: str, verify: bool) -> tuple[str, ...]:
    """One row for a dataset kept in the Minari cache (a minari/ or an offrl/ task)."""
    path = minari_io.minari_dataset_path(dataset_id)
    if not (path / "data" / "metadata.json").is_file():
        return (task_name, source, "-", "-", "-", "-", "-", "not on disk")
    try:
        info = minari_io.read_minari_info(dataset_id)
    except DatasetError:
        return (task_name, source, "-", "unreadable", "-", "-", "-", str(path))
    if verify and minari_io.CHECKSUM_KEY in info.metadata:
        with contextlib.suppress(OffrlError):  # a mismatch is recorded before it is raised
            load_task(task_name)
    eval_env = info.eval_env_spec.id if info.eval_env_spec else "(none stored)"
    size = f"{info.total_steps:,} steps, {_megabytes(info.path)}"
    refs = (_ref(info.ref_min_score), _ref(info.ref_max_score))
    return (task_name, source, eval_env, size, *refs, minari_io.check_status(info), str(path))


def list_tasks(verify: bool = False) -> str:
    """Every known task: source, eval env, size, reference scores, checksum, where it is.

    `verify` re-reads every cached dataset that recorded a checksum (slow); otherwise the
    checksum column shows the last verification of unchanged files.
    """
    rows = []
    for name, (ref_min, ref_max) in sorted(d4rl.D4RL_REF_SCORES.items()):
        known_env = d4rl_eval_env(name)
        eval_env = known_env[0] if known_env else "none (maze2d: use offrl/pointmaze)"
        path = d4rl.find_d4rl_file(name)
        size = f"{_d4rl_rows(path)}, {_megabytes(path)}" if path else "-"
        status, where = ("none", str(path)) if path else ("-", "not on disk")
        refs = (_ref(ref_min), _ref(ref_max))
        rows.append((f"d4rl/{name}", "d4rl file", eval_env, size, *refs, status, where))
    for dataset_id, recipe in generate.recipes().items():
        row = _cached_row(dataset_id, dataset_id, "generated", verify)
        if row[-1] == "not on disk":  # not made yet: its evaluation env is known already
            row = (*row[:2], recipe.env_spec.id, *row[3:])
        elif row[3] != "unreadable" and generate.is_stale(dataset_id):
            row = (*row[:6], "stale", row[7])
        elif row[3] != "unreadable" and generate.nonstandard(dataset_id):
            row = (*row[:3], f"{row[3]} (preview)", *row[4:])
        rows.append(row)
    for dataset_id in SOURCES["minari"].names():
        rows.append(_cached_row(f"minari/{dataset_id}", dataset_id, "minari", verify))
    header = ("TASK", "SOURCE", "EVAL ENV", "SIZE", "REF MIN", "REF MAX", "CHECKSUM", "ON DISK")
    searched = ", ".join(str(p) for p in d4rl.d4rl_search_dirs())
    footer = (
        f"\nD4RL files are looked for in: {searched}. "
        f"Minari datasets (offrl/ ones included) in: {minari_io.minari_root()}.\n"
        "Make an embedded (generated) dataset with `offrl data make TASK`, all of them with "
        "`offrl data make --all`.\n"
        "CHECKSUM: ok / mismatch = last verification of the unchanged files, unchecked = not "
        "verified since written (`offrl data list --verify`), none = no checksum recorded, "
        "stale = made from other behaviour policies than the shipped ones (`offrl data make TASK "
        "--overwrite`). (preview) = another size or seed than the standard dataset's: `offrl "
        "bench` makes the standard one before training."
    )
    return _table(header, rows) + footer


def make_datasets(
    names: list[str],
    seed: int = 0,
    steps: int | None = None,
    overwrite: bool = False,
    workers: int = generate.WORKERS,
    keep_going: bool = False,
    progress: bool = True,
) -> Iterator[str]:
    """Make each embedded dataset with its own progress bar; yields one summary line each.

    With `keep_going` (`--all`), datasets already on disk are left alone and a failure (such as
    policies not shipped yet) does not stop the others: they are raised together at the end.
    """
    failed = []
    for name in names:
        if keep_going and not overwrite and minari_io.minari_dataset_path(name).exists():
            yield f"{name}: on disk, left as it is (--overwrite makes it again)"
            continue
        total = steps or generate.find_recipe(name).transitions
        with tqdm(
            total=total,
            desc=name,
            unit="step",
            unit_scale=True,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar:

            def advance(count: int, bar=bar) -> None:
                bar.update(count)
                if bar.n >= bar.total:
                    bar.set_postfix_str("checksum and write")

            try:
                made = generate.make_dataset(name, seed, steps, overwrite, advance, workers)
            except OffrlError as error:
                if not keep_going:
                    raise
                failed.append(f"{name}: {error}")
                continue
        returns = made.episode_returns
        yield (
            f"Made {made.dataset_id} (seed {seed}) in {made.seconds:.0f} s: "
            f"{made.transitions:,} transitions, {made.episodes:,} episodes, return mean "
            f"{returns.mean():.1f}; checksum {made.checksum[:16]}...; at {made.path}"
        )
    if failed:
        raise DatasetError("Some datasets were not made:\n" + "\n".join(failed))


def make_command(
    task: str | None,
    all_: bool = False,
    seed: int = 0,
    steps: int | None = None,
    overwrite: bool = False,
    workers: int = generate.WORKERS,
    progress: bool = True,
) -> Iterator[str]:
    """`offrl data make TASK | --all`: checks the arguments, then makes the datasets."""
    if all_ == (task is not None):
        raise ConfigError(
            "Name one embedded task (e.g. `offrl data make offrl/hopper/medium-v0`) or pass "
            "--all, not both."
        )
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be a positive number of transitions, got {steps}.")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}.")
    if task is None:
        names = list(generate.recipes())
        return make_datasets(names, seed, steps, overwrite, workers, True, progress)
    name = generate.find_recipe(task).dataset_id
    minari_io.check_writable(name, overwrite)  # before any bar or rollout
    return make_datasets([name], seed, steps, overwrite, workers, False, progress)


def info(task_name: str) -> str:
    """Everything about one task: where it is, its size and shapes, returns, scores, checksum."""
    loaded = load_task(task_name)
    task, transitions = loaded.task, loaded.transitions
    returns = episode_returns(transitions)
    spec = task.env_spec
    lines = [
        ("task", task.name),
        ("source", task.source),
        ("path", f"{loaded.path} ({_megabytes(Path(loaded.path))})"),
        ("transitions", f"{transitions.size:,}"),
        ("observation dim", str(transitions.obs_dim)),
        ("action dim", str(transitions.action_dim)),
        ("dones", f"{int(np.sum(transitions.dones)):,}"),
        ("episodes", f"{returns.size:,} (ends at dones and at next-observation jumps)"),
        (
            "episode return",
            f"mean {returns.mean():.2f}  std {returns.std():.2f}  "
            f"min {returns.min():.2f}  max {returns.max():.2f}",
        ),
    ]
    normalized = task.normalized_score(returns)
    if normalized is None:
        lines.append(("reference scores", "none: raw returns are reported"))
    else:
        refs = f"min {_ref(task.ref_min_score)}, max {_ref(task.ref_max_score)}"
        lines.append(("reference scores", refs))
        formula = "100 (R - min) / (max - min)"
        lines.append(("normalized return", f"mean {normalized.mean():.1f} ({formula})"))
    recorded = ""
    if task.source in ("minari", "offrl"):
        metadata = minari_io.read_minari_info(minari_id(task)).metadata
        lines.append(("collected by", str(metadata.get("algorithm_name", "not recorded"))))
        lines.append(("description", str(metadata.get("description", "not recorded"))))
        if "offrl_collector_success" in metadata:
            success = metadata["offrl_collector_success"]
            lines.append(("collector success", f"{success:.0%} on the evaluation task"))
        if "offrl_reward_one_steps" in metadata:
            lines.append(("reward-1 steps", f"{metadata['offrl_reward_one_steps']:,}"))
        if minari_io.CHECKSUM_KEY in metadata:  # load_task has verified it
            recorded = " (matches the checksum recorded when it was written)"
    kwargs = f", kwargs {spec.kwargs}" if spec.kwargs else ""
    lines.append(("eval env", f"{spec.id}{kwargs}, {spec.max_episode_steps} steps per episode"))
    lines.append(("checksum", f"sha256 {loaded.checksum}{recorded}"))
    width = max(len(key) for key, _ in lines)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in lines)


def collect_command(
    env: str, policy: str, steps: int, dataset_id: str, seed: int = 0, overwrite: bool = False
) -> str:
    """`offrl data collect`: roll out, write minari/<dataset_id>, and say how to use it."""
    result = collect(env, policy, steps, dataset_id, seed=seed, overwrite=overwrite)
    returns = result.episode_returns
    return (
        f"Wrote {result.steps:,} transitions of the '{policy}' policy in {env} (seed {seed}) "
        f"to {result.path} in {result.seconds:.1f} s.\n"
        f"{result.episodes:,} episodes: {result.terminated:,} terminated, "
        f"{result.truncated:,} truncated; return mean {returns.mean():.2f}, "
        f"min {returns.min():.2f}, max {returns.max():.2f}.\n"
        f"Task name: minari/{dataset_id}  (e.g. `offrl data info minari/{dataset_id}`)"
    )
