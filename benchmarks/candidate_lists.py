"""How PRDC's certified candidate lists trade build time for certification on a real dataset:
`python -m benchmarks.candidate_lists [--task T] [--caps 32,64,128,0] [--rows N] [--run RUN]`.

For N dataset rows drawn at random, each cap (cells a row's search visits at most; 0: none) of
`PrunedIVF.search_capped` is timed over the states, as `faiss_candidates` builds the lists, and its
radii are checked against the exact ones (FAISS's flat search): never above, and their median
ratio. With `--run` (a PRDC run folder on the task), every seed's actor there queries the rows as
its actor step does, (beta * s_b, pi(s_b)), and the share of queries each cap's lists certify is
printed: the share that needs no search during training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.configs import config_for
from benchmarks.ivf_search import prdc_states
from offrl.data.registry import load_task
from offrl.neighbors.candidates import state_search
from offrl.neighbors.pruned_ivf import PrunedIVF
from offrl.policy import load_policy
from offrl.run_manifest import read_run_manifest

LIST_SIZE = 32  # PRDC's default --candidates


def capped_lists(search: PrunedIVF, states: np.ndarray, cap: int):
    """(lists, radii, seconds, share of rows cut by the cap) for `states`; cap 0: uncapped."""
    began = time.perf_counter()
    dist2, found, beyond = search.search_capped(states, LIST_SIZE + 1, cap or 1 << 30)
    seconds = time.perf_counter() - began
    radius = np.minimum(np.sqrt(np.maximum(dist2[:, LIST_SIZE], 0.0)), beyond)
    return found[:, :LIST_SIZE], radius, seconds, float(np.isfinite(beyond).mean())


def certified(states, actions, rows, lists, radius, beta: float, policy_actions) -> float:
    """Share of the actor's queries at `rows` whose best candidate lies within beta * radius."""
    state_part = beta**2 * ((states[lists] - states[rows][:, None]) ** 2).sum(-1)
    dist2 = state_part + ((actions[lists] - policy_actions[:, None]) ** 2).sum(-1)
    return float((dist2.min(1) <= (beta * radius) ** 2).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="offrl/halfcheetah/medium-v0")
    parser.add_argument("--caps", default="32,64,128,0")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--run", type=Path, default=None)
    args = parser.parse_args(argv)
    states, actions = prdc_states(args.task)
    n, dim = states.shape
    search = state_search(states)
    rows = np.random.default_rng(0).choice(n, args.rows, replace=False)
    nearest = search.flat.search(states[rows], LIST_SIZE + 1)[0]
    exact = np.sqrt(np.maximum(nearest[:, LIST_SIZE], 0.0))
    beta = config_for("prdc", args.task).beta
    policies = []
    if args.run is not None:
        observations = np.asarray(load_task(args.task).transitions.observations)[rows]
        manifest = read_run_manifest(args.run)
        if manifest is None:
            parser.error(f"--run {args.run}: not a run folder (no run.json)")
        seeds = manifest.seeds
        policies = [np.asarray(load_policy(args.run, seed=s)(observations)) for s in seeds]
    cells = search.ivf.nlist
    print(f"{args.task}: {n:,} rows x {dim} dims, {cells} cells, beta {beta}, {len(rows)} rows")
    for cap in (int(c) for c in args.caps.split(",")):
        lists, radius, seconds, cut = capped_lists(search, states[rows], cap)
        if np.any(radius > exact * (1 + 1e-5) + 1e-5):
            raise AssertionError(f"cap {cap}: a radius above the exact one")
        shares = [certified(states, actions, rows, lists, radius, beta, p) for p in policies]
        line = (
            f"cap {cap or 'none':>4}: {1e3 * seconds / len(rows):.3f} ms a row "
            f"({seconds / len(rows) * n / 60:.1f} min for all), {cut:.1%} of rows cut, "
            f"radius / exact median {np.median(radius / exact):.3f}"
        )
        if shares:
            line += ", certified " + " / ".join(f"{s:.1%}" for s in shares)
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
