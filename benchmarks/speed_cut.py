"""`make bench-speed`'s cut: a chunk run as `fit` runs it, as one scan against scans of
`log_every` updates whose losses are read after each (what moves the progress bar)."""

from __future__ import annotations

from benchmarks.speed_common import best_seconds, single_seed
from offrl.chunk import run_scans, scan_lengths, window_losses
from offrl.data.transitions import Transitions
from offrl.fused import make_train_chunk


def cut_rates(agent, config, data: Transitions, chunk: int, log_every: int, rounds: int):
    """(updates/s as one scan, as scans of `log_every`) of one seed's `chunk` updates through
    `fit`'s `run_scans`, each scan's losses averaged on the host; interleaved rounds, best of
    each. One seed: the fastest scans, where the host's share is largest."""
    carry = single_seed(agent, config)
    compiled = {
        n: make_train_chunk(agent, carry, n, config.batch_size).lower(carry, data, None).compile()
        for n in {chunk, log_every}
    }

    def run(lengths: list[int]):
        def call():
            for scanned in run_scans(compiled, lengths, carry, data, None):
                window_losses(scanned.metrics)

        return call

    variants = {"whole": run([chunk]), "cut": run(scan_lengths(chunk, log_every))}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, call in variants.items():
            best[name] = min(best[name], best_seconds(call, repeats=1))
    return chunk / best["whole"], chunk / best["cut"]
