"""Evaluation's share of a run's wall time: the same short run of `fit`, its chunks evaluated in
turn and beside the next chunk's training, alternated over rounds (`python -m
benchmarks.speed_eval`; docs/speed.md)."""

from __future__ import annotations

import argparse
import time

from offrl.agent import official_config, resolve_agent
from offrl.data.registry import load_task
from offrl.train import fit


def wall_seconds(agent, loaded, config, args, evaluate: bool, overlap: bool) -> float:
    began = time.perf_counter()
    fit(
        agent,
        loaded.transitions,
        config,
        seeds=range(args.seeds),
        steps=args.steps,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        task=loaded.task if evaluate else None,
        progress=False,
        overlap_evaluation=overlap,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="td3bc")
    parser.add_argument("--task", default="offrl/hopper/medium-v0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    agent, loaded = resolve_agent(args.agent), load_task(args.task)
    config = official_config(agent, args.task)
    variants = {"none": (False, False), "in turn": (True, False), "beside": (True, True)}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, (evaluate, overlap) in variants.items():
            seconds = wall_seconds(agent, loaded, config, args, evaluate, overlap)
            best[name] = min(best[name], seconds)
    chunks = -(-args.steps // args.eval_every)
    print(
        f"{args.agent} on {args.task}, {args.seeds} seeds, {args.steps} updates, {chunks} "
        f"evaluations of {args.eval_episodes} episodes per seed (best of {args.rounds} rounds):"
    )
    share = 1 - best["none"] / best["in turn"]
    print(f"  without evaluation: {best['none']:.1f} s")
    print(f"  evaluated in turn: {best['in turn']:.1f} s (evaluation {share:.1%} of the run)")
    print(f"  evaluated beside the next chunk: {best['beside']:.1f} s")
    print(f"  beside / in turn: x{best['beside'] / best['in turn']:.3f}")


if __name__ == "__main__":
    main()
