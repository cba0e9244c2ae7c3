"""The checksum of a cached Minari dataset: the metadata key it is recorded under when offrl
writes it, and the remembered result of its last verification."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

from offrl.data.minari_cache import minari_dataset_path
from offrl.data.minari_read import MinariInfo

CHECKSUM_KEY = "offrl_checksum"
"""Metadata key: `transitions.checksum` of what the loader returns, recorded when offrl wrote it."""
_CHECK_STAMP = ".offrl-check.json"
"""Beside `data/`: the last verification's result and the file sizes and times it applies to."""


def _fingerprint(path: Path) -> list[list]:
    """Name, size and modification time of every file under `data/`: changes when they do."""
    files = sorted(p for p in (path / "data").rglob("*") if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def record_check(dataset_id: str, expected: str, ok: bool) -> None:
    """Remember a checksum verification, so `offrl data list` can show it without re-reading."""
    path = minari_dataset_path(dataset_id)
    stamp = {"expected": expected, "ok": ok, "files": _fingerprint(path)}
    tmp = path / f"{_CHECK_STAMP}.{uuid.uuid4().hex}.tmp"
    with contextlib.suppress(OSError):  # a read-only cache just keeps showing "unchecked"
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, path / _CHECK_STAMP)
    tmp.unlink(missing_ok=True)


def check_status(info: MinariInfo) -> str:
    """'ok' / 'mismatch' from the last verification of unchanged files, 'unchecked' if there is
    none (or the files changed since), 'none' when no checksum was recorded at writing."""
    expected = info.metadata.get(CHECKSUM_KEY)
    if expected is None:
        return "none"
    try:
        stamp = json.loads((info.path / _CHECK_STAMP).read_text())
    except (OSError, ValueError):
        return "unchecked"
    if stamp.get("expected") != expected or stamp.get("files") != _fingerprint(info.path):
        return "unchecked"
    return "ok" if stamp.get("ok") else "mismatch"
