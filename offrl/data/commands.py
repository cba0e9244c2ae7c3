"""The `offrl data` verbs as plain functions returning text; bad input raises OffrlError."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from offrl.data import d4rl, minari_io
from offrl.data.collect import collect
from offrl.data.registry import D4RL_EVAL_ENVS, load_task
from offrl.data.transitions import Transitions
from offrl.errors import DatasetError


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


def list_tasks() -> str:
    """Every known task: source, eval env, size on disk, reference scores, location."""
    rows = []
    for name, (ref_min, ref_max) in sorted(d4rl.D4RL_REF_SCORES.items()):
        env = d4rl.LOCOMOTION_NAMES.get(name)
        eval_env = D4RL_EVAL_ENVS[env][0] if env else "(later issue)"
        path = d4rl.find_d4rl_file(name)
        size = f"{_d4rl_rows(path)}, {_megabytes(path)}" if path else "-"
        where = str(path) if path else "not on disk"
        rows.append((f"d4rl/{name}", "d4rl", eval_env, size, _ref(ref_min), _ref(ref_max), where))
    for dataset_id in minari_io.local_dataset_ids():
        try:
            info = minari_io.read_minari_info(dataset_id)
        except DatasetError:
            rows.append((f"minari/{dataset_id}", "minari", "-", "unreadable", "-", "-", "-"))
            continue
        eval_env = info.eval_env_spec.id if info.eval_env_spec else "(none stored)"
        size = f"{info.total_steps:,} steps, {_megabytes(info.path)}"
        refs = (_ref(info.ref_min_score), _ref(info.ref_max_score))
        rows.append((f"minari/{dataset_id}", "minari", eval_env, size, *refs, str(info.path)))
    header = ("TASK", "SOURCE", "EVAL ENV", "SIZE", "REF MIN", "REF MAX", "ON DISK")
    searched = ", ".join(str(p) for p in d4rl.d4rl_search_dirs())
    footer = (
        f"\nD4RL files are looked for in: {searched}. "
        f"Minari datasets in: {minari_io.minari_root()}."
    )
    return _table(header, rows) + footer


def episode_returns(transitions: Transitions) -> np.ndarray:
    """Undiscounted return of each episode seen in the table.

    An episode ends at a done or where the next observation is not the following row's
    observation (a dropped time-out, or a new episode after a truncation).
    """
    observations = np.asarray(transitions.observations)
    next_observations = np.asarray(transitions.next_observations)
    ends = np.asarray(transitions.dones) > 0
    ends[:-1] |= np.any(next_observations[:-1] != observations[1:], axis=1)
    ends[-1] = True
    starts = np.r_[0, np.flatnonzero(ends)[:-1] + 1]
    return np.add.reduceat(np.asarray(transitions.rewards, dtype=np.float64), starts)


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
    if task.source == "minari":
        metadata = minari_io.read_minari_info(task.dataset).metadata
        lines.append(("collected by", str(metadata.get("algorithm_name", "not recorded"))))
        lines.append(("description", str(metadata.get("description", "not recorded"))))
    kwargs = f", kwargs {spec.kwargs}" if spec.kwargs else ""
    lines.append(("eval env", f"{spec.id}{kwargs}, {spec.max_episode_steps} steps per episode"))
    lines.append(("checksum", f"sha256 {loaded.checksum}"))
    width = max(len(key) for key, _ in lines)
    return "\n".join(f"{key.ljust(width)}  {value}" for key, value in lines)


def collect_command(
    env: str, policy: str, steps: int, out: str, seed: int = 0, overwrite: bool = False
) -> str:
    """`offrl data collect`: roll out, write minari/<out>, and say how to use it."""
    result = collect(env, policy, steps, out, seed=seed, overwrite=overwrite)
    returns = result.episode_returns
    return (
        f"Wrote {result.steps:,} transitions of the '{policy}' policy in {env} (seed {seed}) "
        f"to {result.path} in {result.seconds:.1f} s.\n"
        f"{result.episodes:,} episodes: {result.terminated:,} terminated, "
        f"{result.truncated:,} truncated; return mean {returns.mean():.2f}, "
        f"min {returns.min():.2f}, max {returns.max():.2f}.\n"
        f"Task name: minari/{out}  (e.g. `offrl data info minari/{out}`)"
    )
