"""Built indexes and candidate lists cached on disk, keyed by a hash of the arrays they index."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """$OFFRL_CACHE_DIR, else ~/.cache/offrl: where built indexes and candidate lists live."""
    return Path(os.environ.get("OFFRL_CACHE_DIR", Path.home() / ".cache" / "offrl")) / "neighbors"


def array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:24]
