"""Fingerprints of a fixed-seed short run of every agent, to check that a refactor keeps training
byte-identical: `python -m benchmarks.fingerprint OUT.json [AGENT ...] [--log-every N]`, before
and after, then compare the two files.

Each agent trains 200 steps (2 seeds, one program) on the first 20,000 rows of the generated
hopper-medium dataset, without evaluation; the fingerprint is the sha256 of every leaf of the
final carry and of the per-chunk losses. `--log-every` cuts each chunk of 100 updates into scans
of N (default: one scan per chunk), which must not change the fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import jax
import numpy as np

from agents import AGENTS
from offrl.data.registry import load_task
from offrl.data.transitions import FIELDS, Transitions
from offrl.train import fit

TASK, ROWS, STEPS, EVAL_EVERY, SEEDS = "offrl/hopper/medium-v0", 20_000, 200, 100, (0, 1)


def fingerprint(agent_name: str, data: Transitions, log_every: int) -> dict[str, object]:
    agent = AGENTS[agent_name]
    result = fit(
        agent,
        data,
        agent.Config(),
        seeds=SEEDS,
        steps=STEPS,
        eval_every=EVAL_EVERY,
        log_every=log_every,
        progress=False,
    )
    leaves = jax.tree.leaves(result.carry)
    state = hashlib.sha256(b"".join(np.asarray(leaf).tobytes() for leaf in leaves))
    losses = json.dumps([r["losses"] for r in result.records], sort_keys=True).encode()
    return {
        "state": state.hexdigest(),
        "leaves": len(leaves),
        "losses": hashlib.sha256(losses).hexdigest(),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("agents", nargs="*", help=f"some of {sorted(AGENTS)} (default: all)")
    parser.add_argument("--log-every", type=int, default=EVAL_EVERY)
    args = parser.parse_args(argv)
    full = load_task(TASK).transitions
    data = Transitions(**{f: np.asarray(getattr(full, f))[:ROWS] for f in FIELDS})
    prints = {}
    for name in args.agents or sorted(AGENTS):
        prints[name] = fingerprint(name, data, args.log_every)
        print(name, prints[name], flush=True)
    args.out.write_text(json.dumps(prints, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
