"""Progress of the long steps before training (reading a dataset, building PRDC's neighbour
search): one bar each, shown unless the caller asked for no progress (`fit(progress=False)`,
`offrl train --no-progress`)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

# A context variable, not an argument: the steps sit below the agent contract's `prepare(data,
# config)`, which has no room for how the caller displays things.
T = TypeVar("T")

_SHOWN = contextvars.ContextVar("offrl_progress_shown", default=True)


@contextlib.contextmanager
def progress_shown(shown: bool) -> Iterator[None]:
    """Show (or hide) the bars of the steps run inside this block."""
    token = _SHOWN.set(shown)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def step_bar(description: str, total: int, unit: str) -> tqdm:
    """A bar for one preparation step, left on screen when done (it says how long it took)."""
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=True,
        disable=not _SHOWN.get(),
        dynamic_ncols=True,
    )


def advancing(items: Iterable[T], bar: tqdm) -> Iterator[T]:
    """`items`, moving `bar` one step after each."""
    for item in items:
        yield item
        bar.update(1)
