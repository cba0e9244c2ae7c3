"""Minari datasets in the local cache, one import for callers: where they live
(offrl.data.minari_cache), reading their metadata and episodes (offrl.data.minari_read), atomic
writes (offrl.data.minari_write) and their checksums' verification record
(offrl.data.minari_checks).

The cache root is `$MINARI_DATASETS_PATH` (read at call time) or `~/.minari/datasets`. Nothing
here downloads: a dataset that is not in the cache is reported, never fetched.
"""

from __future__ import annotations

from offrl.data.minari_cache import (
    local_dataset_ids,
    minari_dataset_path,
    minari_root,
    validate_dataset_id,
)
from offrl.data.minari_checks import CHECKSUM_KEY, check_status, record_check
from offrl.data.minari_read import (
    MinariArrays,
    MinariInfo,
    flatten_episodes,
    load_minari_arrays,
    read_minari_info,
)
from offrl.data.minari_write import check_writable, write_minari_dataset
from offrl.envs import flatten_goal_observation

__all__ = [
    "CHECKSUM_KEY",
    "MinariArrays",
    "MinariInfo",
    "check_status",
    "check_writable",
    "flatten_episodes",
    "flatten_goal_observation",
    "load_minari_arrays",
    "local_dataset_ids",
    "minari_dataset_path",
    "minari_root",
    "read_minari_info",
    "record_check",
    "validate_dataset_id",
    "write_minari_dataset",
]
