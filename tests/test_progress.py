"""The preparation steps' own progress: PRDC's candidate lists built a row range at a time, with
the bytes of a build in one call, and bars that `progress_shown(False)` hides."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from offrl.neighbors import build_blocks, build_faiss_index, faiss_candidates, state_candidates
from offrl.progress import progress_shown


@pytest.fixture
def small_faiss_blocks():
    """FAISS's BLAS threshold and query block made small, so a few thousand rows take several
    ranges (both are read by FAISS and by `build_blocks` at every call)."""
    saved = faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_query_bs
    faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_query_bs = 100, 64
    yield
    faiss.cvar.distance_compute_blas_threshold, faiss.cvar.distance_compute_blas_query_bs = saved


# Ranges of 1,024 rows (16 query blocks); a last one under 100 rows joins the one before.
@pytest.mark.parametrize(
    ("n", "count"), [(1, 1), (99, 1), (1024, 1), (1100, 1), (1124, 2), (2048, 2), (5000, 5)]
)
def test_build_blocks_are_whole_query_blocks_above_the_blas_threshold(small_faiss_blocks, n, count):
    blocks = build_blocks(n)
    assert len(blocks) == count
    assert [i for r in blocks for i in r] == list(range(n))
    assert all(r.start % 64 == 0 for r in blocks)
    assert len(blocks) == 1 or all(len(r) >= 100 for r in blocks)


def test_candidate_lists_built_in_ranges_are_those_of_one_call(small_faiss_blocks):
    states = np.random.default_rng(0).standard_normal((3000, 11)).astype(np.float32)
    blocks = build_blocks(len(states))
    assert len(blocks) == 3
    advanced = []
    in_ranges = faiss_candidates(states, 8, blocks, advanced.append)
    assert advanced == [1024, 1024, 952]
    at_once = faiss_candidates(states, 8, [range(len(states))], lambda _: None)
    for ranged, whole in zip(in_ranges, at_once, strict=True):
        assert ranged.tobytes() == whole.tobytes()


def test_preparation_bars_say_what_they_build_unless_hidden(tmp_path, monkeypatch, capsys):
    states = np.random.default_rng(1).standard_normal((3000, 5)).astype(np.float32)
    monkeypatch.setenv("OFFRL_CACHE_DIR", str(tmp_path / "shown"))
    state_candidates(states, 8)
    build_faiss_index(states, "faiss-ivf", hnsw_m=32, ivf_lists=16)
    drawn = capsys.readouterr().err
    assert "neighbour candidate lists (3,000 rows, 8 each): 100%" in drawn
    assert "neighbour index (faiss-ivf, lists16, 3,000 keys): 100%" in drawn

    monkeypatch.setenv("OFFRL_CACHE_DIR", str(tmp_path / "hidden"))
    with progress_shown(False):
        state_candidates(states, 8)
        build_faiss_index(states, "faiss-ivf", hnsw_m=32, ivf_lists=16)
    assert capsys.readouterr().err == ""
