"""How the leaderboard writes numbers, intervals, seed lists and file names."""

from __future__ import annotations

import re
from collections.abc import Sequence

from benchmarks import stats


def num(x: float, digits: int = 1) -> str:
    """`x` rounded to `digits`, without the sign of a negative zero."""
    text = f"{x:.{digits}f}"
    return text[1:] if re.fullmatch(r"-0\.?0*", text) else text


def signed(x: float) -> str:
    text = num(x)
    return text if text.startswith("-") or float(text) == 0.0 else f"+{text}"


def interval_text(interval: stats.Interval, digits: int = 1) -> str:
    return (
        f"{num(float(interval.point), digits)} "
        f"[{num(float(interval.low), digits)}, {num(float(interval.high), digits)}]"
    )


def seed_list(seeds: Sequence[int]) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")
