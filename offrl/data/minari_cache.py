"""Where Minari datasets live: the local cache root, dataset ids and their folders.

The cache root is `$MINARI_DATASETS_PATH` (read at call time) or `~/.minari/datasets`.
"""

from __future__ import annotations

from pathlib import Path

import minari
from minari.dataset.minari_dataset import DATASET_ID_RE
from minari.storage import get_dataset_path

from offrl.errors import DatasetError

MINARI_HDF5_FILE = "main_data.hdf5"
"""The file in a Minari HDF5 dataset's `data/` folder that holds the episodes and metadata."""


def minari_root() -> Path:
    """The local Minari cache root (created if missing, as minari itself does)."""
    return Path(get_dataset_path())


def validate_dataset_id(dataset_id: str) -> str:
    """Accept `[namespace/]name-v<N>` ids only; minari itself crashes on ids without a version."""
    match = DATASET_ID_RE.fullmatch(dataset_id)
    if match is None or match.group("version") is None or "//" in dataset_id:
        fixed = f"{dataset_id}-v0" if match is not None and "//" not in dataset_id else None
        example = f" such as '{fixed}'" if fixed else ", e.g. 'local/hopper-random-v0'"
        raise DatasetError(
            f"'{dataset_id}' is not a valid Minari dataset id: ids look like "
            "[namespace/]name-v<N> (letters, digits, '-' and '_'; namespaces of two or more "
            f"characters, '/'-separated) and must end with a version suffix -v<N>. "
            f"Use an id{example}."
        )
    return dataset_id


def minari_dataset_path(dataset_id: str) -> Path:
    """Folder of a dataset in the cache (its arrays and metadata live under `data/`)."""
    return minari_root() / validate_dataset_id(dataset_id)


def local_dataset_ids() -> list[str]:
    """Ids of every dataset in the local cache, sorted."""
    return sorted(minari.list_local_datasets())
