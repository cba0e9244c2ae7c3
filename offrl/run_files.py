"""A run folder's files: append-only evaluation and loss records, atomic writes, disk space. Its
run.json is `offrl.run_manifest` (offline runs) or `offrl.behavior.run_record` (behaviour runs)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offrl.errors import OffrlError
from offrl.json_records import RecordMismatch, from_json, to_json


class RunFolderError(OffrlError):
    """A run folder whose run.json is damaged."""


RECORDS = "records.jsonl"
"""One line per seed and evaluation: returns, score, the chunk's mean losses, updates/s."""
LOSSES = "losses.jsonl"
"""One line per seed every `log_every` updates: each metric's mean over those updates."""


def atomic_write(path: Path, write_to: Callable[[str], None]) -> None:
    """`write_to(tmp)` writes a temporary file beside `path`; it is fsynced, then renamed over
    `path`: readers never see half a file, and a failed write leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write_to(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


RUN_JSON = "run.json"


def write_run_json(run_dir: Path, record: Any) -> None:
    """A run folder's run.json: the record's fields as JSON, keys sorted, atomically."""
    text = json.dumps(to_json(record), indent=2, sort_keys=True)
    atomic_write_text(Path(run_dir) / RUN_JSON, text)


def read_run_json(run_dir: Path, record: type, kind: str, remedy: str) -> Any | None:
    """A run folder's run.json read as `record`, None when there is none. A damaged one is a
    RunFolderError; so is one that is not a `kind`, with the field and `remedy` named."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(
            f"{path} is damaged (not valid JSON: {err}); it is what ties the folder's "
            "checkpoints to their config, so train into a new --out"
        ) from None
    try:
        return from_json(record, value)
    except RecordMismatch as err:
        raise RunFolderError(f"{path} is not {kind} this offrl reads: {err}; {remedy}") from None


def read_records(run_dir: Path, name: str = RECORDS) -> list[dict[str, Any]]:
    path = Path(run_dir) / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def records_size(run_dir: Path, name: str = RECORDS) -> int:
    """Bytes of a records file (0 when absent): `cut_records` goes back to it."""
    path = Path(run_dir) / name
    return path.stat().st_size if path.exists() else 0


def cut_records(run_dir: Path, size: int, name: str = RECORDS) -> None:
    """Cut a records file back to `size` bytes in place: needs no free space, unlike a rewrite."""
    path = Path(run_dir) / name
    if path.exists():
        os.truncate(path, size)


def append_records(run_dir: Path, records: list[dict[str, Any]], name: str = RECORDS) -> None:
    """Append whole lines in one write, so a crash leaves at most a torn last line; a failed
    write (a full disk) is cut back, leaving no partial line."""
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    size = records_size(run_dir, name)
    try:
        with open(Path(run_dir) / name, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        cut_records(run_dir, size, name)
        raise


# Errors that mean "no room for this write": a full disk, a quota, a file size limit.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def out_of_space(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is a write refused for lack of space; orbax and
    TensorStore wrap the OSError in their own exception types, keeping only its text."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(error) for text in NO_SPACE_TEXTS):
            return True
        error = error.__cause__ or error.__context__
    return False


def free_space(folder: Path) -> str:
    """Free bytes on the filesystem holding `folder`, for messages."""
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    return f"{shutil.disk_usage(existing).free / 2**20:,.1f} MiB free"


def truncate_records(run_dir: Path, last_step: int, name: str = RECORDS) -> None:
    """Drop records newer than the checkpoint a run resumes from (written just before a crash)."""
    path = Path(run_dir) / name
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record["step"] <= last_step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
