"""Milliseconds per batch of the exact pruned IVF search (`faiss-ivf-exact`) on a real dataset's
PRDC keys: `python -m benchmarks.ivf_search [--task T] [--lists 1000,2000] [--k K]
[--baseline OLD/offrl/neighbors/pruned_ivf.py]`.

Queries as PRDC's actor step sends them, (beta * s_b, action) at 768 dataset rows b, with the
row's action plus N(0, 0.05^2) or N(0, 0.3^2) noise (clipped), uniform, or saturated (+-1)
actions. With k = 1 the row's own key bounds the distance (as without candidate lists); larger k
are bounded by the k-th nearest of the row's 32 candidate keys, as `RowMemory`'s searches for
k = memory + 1 are. `--baseline` loads another version of `pruned_ivf.py` (say from a worktree of an
earlier commit) and times it on the same 1,000-cell index, interleaved with this one; every
search's rows are checked against faiss-flat's.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

from offrl.data.normalization import fit_normalizer
from offrl.data.registry import load_task
from offrl.neighbors import PrunedIVF, build_faiss_index, state_candidates
from offrl.neighbors.pruned_ivf import exact_ivf_lists

QUERIES = 768


def prdc_states(task: str) -> tuple[np.ndarray, np.ndarray]:
    """(normalised states, actions) as PRDC reads them."""
    data = load_task(task).transitions
    states = np.asarray(fit_normalizer(data.observations)(np.asarray(data.observations)))
    return states.astype(np.float32), np.asarray(data.actions, np.float32)


def query_sets(
    keys: np.ndarray, state_dim: int, candidates: np.ndarray | None, k: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (queries, upper bound on the squared k-th distance)."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(keys), QUERIES)
    own = keys[rows, state_dim:]
    actions = {
        "a+0.05": np.clip(own + 0.05 * rng.standard_normal(own.shape), -1, 1),
        "a+0.3": np.clip(own + 0.3 * rng.standard_normal(own.shape), -1, 1),
        "uniform": rng.uniform(-1, 1, own.shape),
        "saturated": np.sign(rng.standard_normal(own.shape)),
    }
    sets = {}
    for name, action in actions.items():
        queries = np.concatenate([keys[rows, :state_dim], action], 1).astype(np.float32)
        if candidates is None:
            upper = ((queries - keys[rows]) ** 2).sum(1)
        else:
            around = ((keys[candidates[rows]] - queries[:, None]) ** 2).sum(-1)
            upper = np.partition(around, k - 1, axis=1)[:, k - 1]
        sets[name] = (queries, upper)
    return sets


def load_baseline(path: Path):
    """The `PrunedIVF` class of another version of `pruned_ivf.py`."""
    spec = importlib.util.spec_from_file_location("baseline_pruned_ivf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PrunedIVF


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="offrl/halfcheetah/medium-v0")
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--lists", default="", help="cells, comma-separated (default: PRDC's)")
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another pruned_ivf.py to time beside")
    args = parser.parse_args(argv)
    states, actions = prdc_states(args.task)
    keys = np.ascontiguousarray(np.concatenate([args.beta * states, actions], 1))
    state_dim = states.shape[1]
    default = exact_ivf_lists(len(keys))
    lists = [int(n) for n in args.lists.split(",")] if args.lists else [default]
    flat = build_faiss_index(keys, "faiss-flat", hnsw_m=32, ivf_lists=1)

    def ivf(cells: int):
        return build_faiss_index(keys, "faiss-ivf", hnsw_m=32, ivf_lists=cells)

    searches = {}
    if args.baseline:
        searches[f"baseline, {default} cells"] = load_baseline(args.baseline)(ivf(default), flat)
    searches |= {f"{n} cells": PrunedIVF(ivf(n), flat) for n in lists}
    candidates = state_candidates(states, 32)[0] if args.k > 1 else None
    sets = query_sets(keys, state_dim, candidates, args.k)
    for name, (queries, upper) in sets.items():
        exact = flat.search(queries, args.k)[1]
        for label, search in searches.items():
            found = search.search(queries, args.k, upper)[1]
            print(f"{name}, {label}: same rows as faiss-flat {(found == exact).all(1).mean():.4f}")
    seconds = {(name, label): [] for name in sets for label in searches}
    for _ in range(args.rounds):
        for (name, label), times in seconds.items():
            queries, upper = sets[name]
            start = time.perf_counter()
            searches[label].search(queries, args.k, upper)
            times.append(time.perf_counter() - start)
    bound = "the own row's key" if args.k == 1 else "the row's 32 candidate keys"
    print(f"{args.task}, {len(keys):,} keys, {QUERIES} queries, k = {args.k}, bounded by {bound}")
    print(f"ms per batch, median of {args.rounds} interleaved rounds (x: against the first)")
    for name in sets:
        first = np.median(seconds[name, next(iter(searches))])
        cells = [f"{label} {np.median(seconds[name, label]) * 1e3:8.1f}" for label in searches]
        ratios = [f"x{first / np.median(seconds[name, label]):.2f}" for label in searches]
        print(f"{name:10s}", " | ".join(f"{c} {r}" for c, r in zip(cells, ratios, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
