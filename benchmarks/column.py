"""A benchmark column in one compiled program: one agent on several datasets of one environment
x several seeds, trained by `fit_many` under the papers' evaluation protocol; prints the wall
time, the updates/s per run and in total, and the time the full protocol would take at that
rate (`python -m benchmarks.column`; docs/speed.md)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from offrl.agent import official_config, resolve_agent
from offrl.data.registry import load_task
from offrl.train_group import GroupMember, fit_many

HOPPER = (
    "offrl/hopper/medium-v0",
    "offrl/hopper/medium-replay-v0",
    "offrl/hopper/medium-expert-v0",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="td3bc")
    parser.add_argument("--tasks", nargs="+", default=list(HOPPER))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50_000, help="updates per run measured")
    parser.add_argument("--full-steps", type=int, default=1_000_000, help="the protocol's")
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--eval-workers", type=int, default=None)
    args = parser.parse_args()
    agent = resolve_agent(args.agent)
    loaded = [load_task(task) for task in args.tasks]
    members = [GroupMember(one.transitions, one.task, None) for one in loaded]
    runs = len(members) * args.seeds
    began = time.perf_counter()
    results = fit_many(
        agent,
        members,
        official_config(agent, args.tasks[0]),
        seeds=range(args.seeds),
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        progress=False,
        eval_workers=args.eval_workers,
    )
    wall = time.perf_counter() - began
    # The first chunk's rate includes no compile (that is before the chunk's clock starts).
    rates = [record["updates_per_s"] for record in results[0].records[:: args.seeds]]
    per_run = float(np.median(rates))
    print(
        f"{args.agent}: {len(members)} datasets x {args.seeds} seeds = {runs} runs in one program, "
        f"{args.steps:,} updates each, evaluated every {args.eval_every:,} ({args.eval_episodes} "
        f"episodes per seed)"
    )
    print(f"  wall time {wall:.1f} s, compile and evaluation included")
    print(f"  training: {per_run:.1f} upd/s per run, {per_run * runs:.1f} in total (median chunk)")
    print(
        f"  the full protocol ({args.full_steps:,} updates per run) at this wall rate "
        "(compile included, so an upper bound): "
        f"{wall * args.full_steps / args.steps / 60:.1f} min"
    )
    for one, result in zip(loaded, results, strict=True):
        finals = [r["normalized_score"] for r in result.records[-args.seeds :]]
        print(f"  {one.task.name}: last scores {', '.join(f'{s:.1f}' for s in finals)}")


if __name__ == "__main__":
    main()
