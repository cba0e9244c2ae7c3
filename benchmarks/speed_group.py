"""`make bench-speed --group K`: K runs on K datasets of one shape in one compiled program
(`offrl.grouped`, as `offrl bench` and `fit_many` group one environment's datasets) against one
run alone and against K seeds vmapped on one dataset; updates/s per run and in total, and the
compile time of the one program against K programs compiled one by one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jax

from agents import AGENTS
from benchmarks.speed_common import ACTION_DIM, OBS_DIM, best_seconds, random_dataset
from offrl.agent import DatasetSpec
from offrl.data.transitions import Transitions
from offrl.fused import init_carry, make_train_chunk
from offrl.grouped import make_group_chunk, stack_carries, stack_datasets


@dataclass
class GroupRates:
    one_run: float
    """updates/s of one run alone (one dataset, one seed)."""
    per_run: float
    """updates/s of each of the K runs in one program."""
    per_seed: float
    """updates/s of each of K seeds vmapped on the first dataset (`fit`'s program)."""
    one_run_compile_s: float
    group_compile_s: float


def compiled_and_seconds(chunk, *args) -> tuple[Any, float]:
    began = time.perf_counter()
    compiled = chunk.lower(*args).compile()
    return compiled, time.perf_counter() - began


def measure_group(
    agent, config, datasets: list[Transitions], chunk: int, rounds: int
) -> GroupRates:
    """One run on the first dataset against one run per dataset in one program, and K seeds on
    the first dataset in one program (what the dataset axis adds to vmapping), timed in
    interleaved rounds."""
    spec = DatasetSpec(OBS_DIM, ACTION_DIM)
    one = init_carry(agent, spec, config, [0])
    single, single_s = compiled_and_seconds(
        make_train_chunk(agent, one, chunk, config.batch_size), one, datasets[0], None
    )
    many = stack_carries([one] * len(datasets))
    stacked = stack_datasets(datasets)
    group, group_s = compiled_and_seconds(
        make_group_chunk(agent, many, chunk, config.batch_size), many, stacked, None
    )
    seeds = init_carry(agent, spec, config, list(range(len(datasets))))
    vmapped = make_train_chunk(agent, seeds, chunk, config.batch_size)
    variants = {
        "one_run": lambda: jax.block_until_ready(single(one, datasets[0], None)),
        "per_run": lambda: jax.block_until_ready(group(many, stacked, None)),
        "per_seed": lambda: jax.block_until_ready(vmapped(seeds, datasets[0], None)),
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, call in variants.items():
            best[name] = min(best[name], best_seconds(call, repeats=1))
    rates = {name: chunk / seconds for name, seconds in best.items()}
    return GroupRates(**rates, one_run_compile_s=single_s, group_compile_s=group_s)


def group_section(names: list[str], runs: int, size: int, chunk: int, rounds: int) -> None:
    """K runs (K datasets of halfcheetah shape, 1 seed each, sizes size, 3/4 size, ...) in one
    compiled program against one run alone."""
    sizes = [max(size * (4 - i % 4) // 4, 1) for i in range(runs)]
    datasets = [random_dataset(n, seed=i) for i, n in enumerate(sizes)]
    print(
        f"\n{runs} runs in one program ({runs} datasets of {', '.join(map(str, sizes))} rows, one "
        f"seed each, {chunk}-update chunks) against one run alone:"
    )
    print(
        f"{'agent':8} {'one run':>8} {f'{runs} in one/run':>14} {'total':>8} {'total/one':>9} "
        f"{f'{runs} seeds/seed':>13} {'total/one':>9} {'compile 1 run s':>15} "
        f"{f'compile {runs} in one s':>18} {f'x{runs} one by one':>14}"
    )
    for name in names:
        agent = AGENTS[name]
        rates = measure_group(agent, agent.Config(), datasets, chunk, rounds)
        total = rates.per_run * runs
        print(
            f"{name:8} {rates.one_run:8.1f} {rates.per_run:14.1f} {total:8.1f} "
            f"{total / rates.one_run:9.2f} {rates.per_seed:13.1f} "
            f"{rates.per_seed * runs / rates.one_run:9.2f} {rates.one_run_compile_s:15.1f} "
            f"{rates.group_compile_s:18.1f} {runs * rates.one_run_compile_s:14.1f}"
        )
