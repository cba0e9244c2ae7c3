"""Elementwise math by the C library: the same bits on every x86-64 CPU.

numpy's own vectorised tanh, exp, sin, cos and arctan2 pick their kernels by instruction set
(np.tanh differs between this machine's AVX2 and its SSE4.2 kernels), and BLAS (under
np.linalg.norm of a vector) picks its by processor. What the generated datasets are computed from
goes through these instead: the C library's functions, which MuJoCo's own results rest on too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _elementwise(function: Callable[..., float], arity: int) -> Callable[..., np.ndarray]:
    ufunc = np.frompyfunc(function, arity, 1)

    def apply(*arrays: np.ndarray) -> np.ndarray:
        return np.asarray(ufunc(*arrays), np.float64)

    apply.__doc__ = f"math.{function.__name__} elementwise, as float64."
    return apply


exp = _elementwise(math.exp, 1)
tanh = _elementwise(math.tanh, 1)
cos = _elementwise(math.cos, 1)
sin = _elementwise(math.sin, 1)
atan2 = _elementwise(math.atan2, 2)
hypot = _elementwise(math.hypot, 2)
