"""Updates/s of the agents, measured side by side in one run (`make bench-speed`).

For each agent, on a 1M-transition dataset of halfcheetah shape (obs 17, act 6; random arrays,
which cost the same as real ones for a dense update), batch 256:
  - one update per jitted call (the host loop most libraries run),
  - one seed, `--chunk` updates fused in one lax.scan (offrl's loop),
  - five seeds vmapped in that scan (per-seed and total rates),
plus the FLOPs of one update (XLA cost analysis) and the achieved GFLOP/s against a float32
matmul peak measured in the same process; for TD3+BC, a JAX-CORL-style update beside it, with its
FLOPs and share of that peak. Where the updates' compiler options differ from XLA's
defaults (CPU: Eigen dots, see `offrl.train.update_compiler_options`), the fused scan and the
JAX-CORL-style reference are also timed with the defaults, so the options' share is printed.

For the first agent, a `--cut-chunk`-update chunk run as `fit` runs it, as one scan and cut into
scans of `--log-every` updates whose losses are fetched and averaged after each (what moves the
progress bar and writes the loss records): the cut's cost, side by side, and the host's fixed
cost per scan, timed on scans of one update.

K runs in one program (`--group K`, `offrl.grouped`: K datasets of one shape, each run sampling its
own rows, as `offrl bench` and `fit_many` group one environment's datasets): per-run and total
updates/s against one run alone, and the compile time of the one program against K programs
compiled one by one; `--group-only` measures that alone.

PRDC's cost depends on the data's structure (where neighbours lie), so it is measured on a REAL
1M-transition dataset (`--prdc-task`): its step time beside TD3+BC's on the same data for every
neighbour search, the search's share of the step, its recall@1 against the exact search on the
warmed-up actor's queries, and the shares of queries the candidate lists certified and the row
memory answered along a training run (`--prdc-warmup` updates).
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from agents import AGENTS
from benchmarks import reference_td3bc
from benchmarks.speed_common import (
    ACTION_DIM,
    OBS_DIM,
    best_seconds,
    random_dataset,
    single_seed,
)
from benchmarks.speed_cut import cut_rates
from benchmarks.speed_group import group_section
from offrl.agent import Context, DatasetSpec
from offrl.data.registry import load_task
from offrl.data.transitions import Transitions, sample, sample_rows, take
from offrl.fused import Carry, init_carry, make_train_chunk, update_compiler_options
from offrl.neighbors import constrained_actions, resolve_search
from offrl.neighbors.faiss_module import faiss_installed
from offrl.train import prepare_data

REFERENCE_UNROLL = 8


def matmul_peak_gflops(repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a square matmul, with XLA's default dots or the updates' (whichever
    is faster): the ceiling dense updates are compared with."""
    best, updates_options = 0.0, update_compiler_options()
    for options in (None,) if updates_options is None else (None, updates_options):
        for n in (512, 1024, 2048):
            a = jnp.ones((n, n), jnp.float32)
            f = jax.jit(lambda x: x @ x, compiler_options=options).lower(a).compile()
            jax.block_until_ready(f(a))
            for _ in range(repeats):
                began = time.perf_counter()
                jax.block_until_ready(f(a))
                best = max(best, 2 * n**3 / (time.perf_counter() - began) / 1e9)
    return best


def layer_chain_gflops(
    compiler_options: dict | None,
    batch: int = 256,
    width: int = 256,
    layers: int = 200,
    repeats: int = 5,
) -> float:
    """GFLOP/s of a dependent chain of (batch x width) @ (width x width) ReLU layers: the shape of
    an update's hidden layers, so the ceiling a batch-256 update can reach, below the square peak
    because each small matmul pays its own threading and dispatch cost."""
    x = jnp.ones((batch, width), jnp.float32)
    w = jnp.full((width, width), 1.0 / width, jnp.float32)
    chain = jax.jit(
        lambda x, w: jax.lax.fori_loop(0, layers, lambda _, h: jax.nn.relu(h @ w), x),
        compiler_options=compiler_options,
    )
    seconds = best_seconds(lambda: jax.block_until_ready(chain(x, w)), repeats)
    return 2 * batch * width * width * layers / seconds / 1e9


def flops_per_update(agent, state, data: Transitions, batch_size: int) -> float:
    """XLA's FLOP count of one update, averaged over the delayed-actor period."""
    batch = sample(data, jax.random.PRNGKey(0), batch_size)
    key = jax.random.PRNGKey(1)

    def flops(fn, *args) -> float:
        return float(jax.jit(fn).lower(*args).compile().cost_analysis()["flops"])

    critic = flops(agent.update_critic, state, batch, key)
    actor = flops(agent.update_actor, state, batch)
    return critic + actor / state.config.policy_freq


def reference_flops_per_update(data: Transitions) -> float:
    """XLA's FLOP count of one JAX-CORL-style update, averaged over its unrolled call."""
    nets = reference_td3bc.init(jax.random.PRNGKey(0), OBS_DIM, ACTION_DIM)
    update_n = reference_td3bc.make_update_n(REFERENCE_UNROLL)
    compiled = update_n.lower(nets, data, jax.random.PRNGKey(1)).compile()
    return float(compiled.cost_analysis()["flops"]) / REFERENCE_UNROLL


@dataclass
class Rates:
    per_call: float
    fused: float
    vmapped_per_seed: float
    fused_xla_dots: float | None = None
    """The fused scan compiled with XLA's default dots, where the updates' differ (CPU)."""
    reference: float | None = None
    """JAX-CORL-style TD3+BC (8 unrolled updates per call, XLA's defaults), TD3+BC only."""
    reference_same_dots: float | None = None
    """The same JAX-CORL-style TD3+BC compiled with the updates' options, where they differ."""


def measure(agent, config, data: Transitions, chunk: int, seeds: int, rounds: int) -> Rates:
    """Every variant timed in interleaved rounds, so drifts of machine speed hit all alike."""
    one = single_seed(agent, config)
    state = jax.tree.map(lambda x: x[0], one.agent.replace(step=one.agent.step[None]))
    single = Carry(agent=state, key=one.key[0])

    options = update_compiler_options()

    @functools.partial(jax.jit, compiler_options=options)
    def one_update(carry: Carry, data: Transitions):
        key, batch_key, update_key = jax.random.split(carry.key, 3)
        rows = sample_rows(data, batch_key, config.batch_size)
        batch = take(data, rows)
        new_state, _ = agent.update(carry.agent, batch, update_key, Context(rows))
        return Carry(agent=new_state, key=key)

    def per_call():
        carry = single
        for _ in range(chunk):
            carry = one_update(carry, data)
        jax.block_until_ready(carry)

    fused_fn = make_train_chunk(agent, one, chunk, config.batch_size)
    many = init_carry(agent, DatasetSpec(OBS_DIM, ACTION_DIM), config, list(range(seeds)))
    vmapped_fn = make_train_chunk(agent, many, chunk, config.batch_size)
    variants = {
        "per_call": per_call,
        "fused": lambda: jax.block_until_ready(fused_fn(one, data, None)),
        "vmapped_per_seed": lambda: jax.block_until_ready(vmapped_fn(many, data, None)),
    }
    if options is not None:
        xla_dots_fn = make_train_chunk(agent, one, chunk, config.batch_size, xla_default_dots=True)
        variants["fused_xla_dots"] = lambda: jax.block_until_ready(xla_dots_fn(one, data, None))
    if agent is AGENTS["td3bc"]:
        nets = reference_td3bc.init(jax.random.PRNGKey(0), OBS_DIM, ACTION_DIM)

        def reference_with(compiler_options):
            reference_fn = reference_td3bc.make_update_n(
                REFERENCE_UNROLL, compiler_options=compiler_options
            )

            def reference():
                state, key = nets, jax.random.PRNGKey(1)
                for _ in range(chunk // REFERENCE_UNROLL):
                    state, key = reference_fn(state, data, key)
                jax.block_until_ready(state)

            return reference

        variants["reference"] = reference_with(None)
        if options is not None:
            variants["reference_same_dots"] = reference_with(options)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, call in variants.items():
            best[name] = min(best[name], best_seconds(call, repeats=1))
    return Rates(**{name: chunk / seconds for name, seconds in best.items()})


# (label, PRDC config overrides): every search, with and without certified candidate lists. The
# default (None) is timed on the warmed-up constraint: its row memory fills along the run.
PRDC_SEARCHES = (
    ("auto + candidates + memory (the default)", None),
    ("faiss-ivf-exact + candidates (no memory)", {"search": "faiss-ivf-exact", "memory": 0}),
    ("faiss-flat + candidates (no memory)", {"search": "faiss-flat", "memory": 0}),
    ("jax + candidates", {"search": "jax", "memory": 0}),
    ("faiss-ivf-exact (every query)", {"search": "faiss-ivf-exact", "candidates": 0, "memory": 0}),
    ("faiss-flat (every query)", {"search": "faiss-flat", "candidates": 0, "memory": 0}),
    ("jax (every query)", {"search": "jax", "candidates": 0, "memory": 0}),
    ("faiss-hnsw (approximate)", {"search": "faiss-hnsw", "candidates": 0, "memory": 0}),
    ("faiss-ivf (approximate)", {"search": "faiss-ivf", "candidates": 0, "memory": 0}),
)
PRDC_REPORT_EVERY = 4_000  # warm-up updates between progress lines
RECALL_QUERIES = 2_000  # dataset rows queried with the warmed-up actor to measure recall@1
ANSWERED_BY = ("certified", "remembered")


def answered_by(metrics: dict) -> tuple[float, float]:
    """(certified by the candidate lists, remembered by the row memory): shares of all queries."""
    shares = (np.nanmean(np.asarray(metrics[f"{name}_fraction"])) for name in ANSWERED_BY)
    certified, remembered = map(float, shares)
    return certified, remembered


def timed_chunk(agent, carry: Carry, data: Transitions, prepared, updates: int):
    """(updates/s, final carry, metrics) of one compiled chunk, compile time excluded."""
    chunk = make_train_chunk(agent, carry, updates, 256).lower(carry, data, prepared).compile()
    began = time.perf_counter()
    carry, metrics = jax.block_until_ready(chunk(carry, data, prepared))
    return updates / (time.perf_counter() - began), carry, metrics


def prdc_section(task_name: str, warmup: int, chunk: int) -> None:
    """PRDC beside TD3+BC on real data, after `warmup` PRDC updates: how many queries the
    candidate lists certify depends on how close pi is to the data, and the row memory answers
    only rows seen before (a row comes back every ~N / 128 updates): a fresh run would mislead."""
    loaded = load_task(task_name)
    td3bc, prdc = AGENTS["td3bc"], AGENTS["prdc"]
    config = prdc.Config()
    data, _ = prepare_data(loaded.transitions, config)
    spec = DatasetSpec(data.obs_dim, data.action_dim)
    print(
        f"\nPRDC on {task_name} ({data.size} transitions, obs {data.obs_dim}, act "
        f"{data.action_dim}), beta {config.beta}, batch 256, one seed"
    )
    began = time.perf_counter()
    prepared = prdc.prepare(data, config)
    print(f"  constraint built (or read from cache) in {time.perf_counter() - began:.1f} s")
    carry = init_carry(prdc, spec, config, [0])
    print("  training step   upd/s  certified  remembered  searched  (shares of actor queries)")
    for done in range(chunk, warmup + 1, chunk):
        rate, carry, metrics = timed_chunk(prdc, carry, data, prepared, chunk)
        if done % PRDC_REPORT_EVERY == 0 or done + chunk > warmup:
            certified, remembered = answered_by(metrics)
            print(
                f"  {done:13d} {rate:7.1f} {certified:10.3f} {remembered:11.3f} "
                f"{1 - certified - remembered:9.3f}"
            )
    rows = jnp.asarray(np.random.default_rng(0).choice(data.size, RECALL_QUERIES, replace=False))
    actor = carry.agent.actor
    seed_params = jax.tree.map(lambda x: x[0], actor.params)
    policy_actions = actor.apply_fn(seed_params, data.observations[rows])
    exact = np.asarray(constrained_actions(prepared, rows, policy_actions)[0])
    td3bc_carry = init_carry(td3bc, spec, td3bc.Config(), [0])
    td3bc_rate, _, _ = timed_chunk(td3bc, td3bc_carry, data, None, chunk)
    print(f"  TD3+BC on the same data: {td3bc_rate:.1f} upd/s")
    print(
        f"  {'search':46} {'build s':>7} {'upd/s':>7} {'x TD3+BC':>8} {'NN share':>8} "
        f"{'certified':>9} {'remembered':>10} {'recall@1':>8}"
    )
    print(f"  (auto is {resolve_search('auto')} here)")
    for label, overrides in PRDC_SEARCHES:
        if (overrides or {}).get("search", "").startswith("faiss") and not faiss_installed():
            print(f"  {label:46} skipped: FAISS is not installed")
            continue
        variant = config if overrides is None else prdc.Config(**overrides)
        began = time.perf_counter()
        constraint = prepared if overrides is None else prdc.prepare(data, variant)
        built = time.perf_counter() - began
        state = carry.replace(agent=carry.agent.replace(config=variant))
        # Exact search of every query (and brute force in JAX, which cannot skip the certified
        # ones) is slow on CPU: time a few updates only.
        jax_on_cpu = variant.search == "jax" and jax.default_backend() == "cpu"
        updates = chunk if variant.candidates and not jax_on_cpu else max(chunk // 20, 2)
        rate, _, metrics = timed_chunk(prdc, state, data, constraint, updates)
        ratio = td3bc_rate / rate
        certified, remembered = answered_by(metrics)
        # Same neighbour action as the exact default, on RECALL_QUERIES rows (ties aside).
        found = np.asarray(constrained_actions(constraint, rows, policy_actions)[0])
        recall = (found == exact).all(axis=1).mean()
        print(
            f"  {label:46} {built:7.1f} {rate:7.1f} {ratio:8.2f} {1 - 1 / ratio:8.1%} "
            f"{certified:9.3f} {remembered:10.3f} {recall:8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--agents", nargs="+", default=["td3bc", "a2pr", "ggdtd"], choices=list(AGENTS)
    )
    parser.add_argument(
        "--prdc-task",
        default="offrl/halfcheetah/medium-v0",
        help="a real 1M-transition dataset for PRDC ('' skips PRDC)",
    )
    parser.add_argument("--prdc-warmup", type=int, default=40_000, help="PRDC updates first")
    parser.add_argument("--size", type=int, default=1_000_000, help="dataset transitions")
    parser.add_argument("--chunk", type=int, default=400, help="updates fused per call")
    parser.add_argument("--seeds", type=int, default=5, help="seeds vmapped together")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--cut-chunk", type=int, default=5_000, help="updates of the cut chunk")
    parser.add_argument("--log-every", type=int, default=1_000, help="updates per scan of the cut")
    parser.add_argument(
        "--group", type=int, default=3, help="K runs (datasets) in one program (0 skips)"
    )
    parser.add_argument(
        "--group-only", action="store_true", help="measure only the K runs in one program"
    )
    args = parser.parse_args()

    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}")
    names = [name for name in args.agents if name != "prdc"]
    if args.group_only:
        group_section(names, args.group, args.size, args.chunk, args.rounds)
        return
    data = random_dataset(args.size)
    peak = matmul_peak_gflops()
    print(f"float32 matmul peak (best of 512/1024/2048 square): {peak:.1f} GFLOP/s")
    options = update_compiler_options()
    chain = layer_chain_gflops(options)
    print(
        f"batch-256 layer chain ((256x256) @ (256x256) + ReLU, 200 deep): {chain:.1f} GFLOP/s "
        f"= {chain / peak:.0%} of the peak, the ceiling for an update's hidden layers"
    )
    if options is not None:
        default_chain = layer_chain_gflops(None)
        print(
            f"  the updates are compiled with {options}; with XLA's default "
            f"dots the chain runs {default_chain:.1f} GFLOP/s ({default_chain / peak:.0%})"
        )
    print(
        f"{'agent':8} {'GFLOP/upd':>9} {'per-call':>9} {'fused':>8} {'fused/call':>10} "
        f"{'%peak':>6} {'%chain':>6} {f'{args.seeds}x-vmap/seed':>15} {'total':>7} "
        f"{'total/fused':>11}"
    )
    baseline = None
    for name in names:
        agent = AGENTS[name]
        config = agent.Config()
        one = single_seed(agent, config)
        state = jax.tree.map(lambda x: x[0], one.agent.replace(step=one.agent.step[None]))
        gflop = flops_per_update(agent, state, data, config.batch_size) / 1e9
        rates = measure(agent, config, data, args.chunk, args.seeds, args.rounds)
        total = rates.vmapped_per_seed * args.seeds
        print(
            f"{name:8} {gflop:9.3f} {rates.per_call:9.1f} {rates.fused:8.1f} "
            f"{rates.fused / rates.per_call:10.2f} {100 * gflop * rates.fused / peak:6.1f} "
            f"{100 * gflop * rates.fused / chain:6.1f} {rates.vmapped_per_seed:15.1f} "
            f"{total:7.1f} {total / rates.fused:11.2f}"
        )
        if rates.fused_xla_dots is not None:
            print(
                f"  fused with XLA's default dots: {rates.fused_xla_dots:.1f} upd/s; the updates' "
                f"options x{rates.fused / rates.fused_xla_dots:.2f}"
            )
        if rates.reference is not None:
            reference_gflop = reference_flops_per_update(data) / 1e9
            print(
                f"  JAX-CORL-style TD3+BC ({REFERENCE_UNROLL} unrolled updates per call, XLA's "
                f"defaults): {rates.reference:.1f} upd/s, {reference_gflop:.3f} GFLOP/upd, "
                f"{100 * reference_gflop * rates.reference / peak:.1f}% of the peak; offrl fused "
                f"/ JAX-CORL-style = {rates.fused / rates.reference:.2f}x"
            )
        if rates.reference_same_dots is not None:
            print(
                f"  JAX-CORL-style with the updates' options: {rates.reference_same_dots:.1f} "
                f"upd/s; offrl fused / it = {rates.fused / rates.reference_same_dots:.2f}x"
            )
        if baseline is None:
            baseline = (name, gflop, rates.fused)
        else:
            print(
                f"  {name} vs {baseline[0]}: step time x{baseline[2] / rates.fused:.2f}, "
                f"FLOPs x{gflop / baseline[1]:.2f}"
            )

    chunk, every = args.cut_chunk, args.log_every
    for name in [name for name in args.agents if name != "prdc"][:1]:
        agent = AGENTS[name]
        whole, cut = cut_rates(agent, agent.Config(), data, chunk, every, args.rounds)
        print(
            f"{name}, one seed, a {chunk}-update chunk: one scan {whole:.1f} upd/s, scans of "
            f"{every} with their losses read {cut:.1f} upd/s: x{cut / whole:.3f}"
        )
        # Scans of one update each make the host's fixed cost per scan large enough to time.
        one_scan, single_updates = cut_rates(agent, agent.Config(), data, 200, 1, args.rounds)
        fixed = (200 / single_updates - 200 / one_scan) / 199
        print(
            f"  the host's fixed cost per scan (200 scans of 1 update against 1 of 200): "
            f"{fixed * 1e3:.2f} ms, {fixed * whole / every:.2%} of a {every}-update scan"
        )

    if args.group:
        group_section(names, args.group, args.size, args.chunk, args.rounds)
    if args.prdc_task:
        prdc_section(args.prdc_task, args.prdc_warmup, args.chunk)


if __name__ == "__main__":
    main()
