"""Behaviour policies evaluated so that a seed makes the same dataset bytes on every x86-64 CPU.

XLA's and BLAS's CPU kernels round differently by processor and instruction set: the same code
made hopper-medium with other checksums on the machine of 2026-12-04 and on an AMD AVX2 one, and
with XLA capped at AVX and not; one flipped bit of one action sends a MuJoCo trajectory elsewhere.
Here the actor runs in float64 numpy: a float32 weight times a float32 input is exact in float64,
and each dot product is numpy's pairwise sum over a contiguous axis, a fixed order of correctly
rounded adds whatever the vector unit. exp and tanh are the C library's (offrl.libm). The noise
is numpy's PCG64, one generator per vector step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from offrl import libm
from offrl.nets import TanhGaussianActor

Layer = tuple[np.ndarray, np.ndarray]  # float64 (kernel transposed: (out, in), bias)


@dataclass(frozen=True)
class Actor:
    """A TanhGaussianActor's MLP as float64 layers, with its log-std bounds."""

    layers: tuple[Layer, ...]
    log_std_min: float
    log_std_max: float

    @classmethod
    def of(cls, module: TanhGaussianActor, params: Any) -> Actor:
        mlp = params["params"]["MLP_0"]
        names = sorted(mlp, key=lambda name: int(name.rsplit("_", 1)[1]))
        layers = tuple(
            (
                np.ascontiguousarray(np.asarray(mlp[name]["kernel"], np.float64).T),
                np.asarray(mlp[name]["bias"], np.float64),
            )
            for name in names
        )
        return cls(layers, module.log_std_min, module.log_std_max)

    def __call__(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, clipped log_std) of the pre-tanh Gaussian for a batch of observations."""
        x = np.asarray(observations, np.float32).astype(np.float64)
        for kernel_t, bias in self.layers[:-1]:
            x = np.maximum(dense(x, kernel_t, bias), 0.0)
        mean, log_std = np.split(dense(x, *self.layers[-1]), 2, axis=-1)
        return mean, np.clip(log_std, self.log_std_min, self.log_std_max)


def dense(x: np.ndarray, kernel_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x @ kernel + bias with every row's sums in one fixed order (rows never mix)."""
    return (x[:, None, :] * kernel_t[None]).sum(axis=-1) + bias


def sac_sample(actor: Actor, observations: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """SAC's stochastic action tanh(mean + std * noise), noise ~ N(0, 1) per action dimension."""
    mean, log_std = actor(observations)
    return libm.tanh(mean + libm.exp(log_std) * noise)


def step_generator(seed: int, step: int) -> np.random.Generator:
    """The generator of vector step `step`'s draws: the same whichever rows ask, in any order."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, step])))


def standard_normal(seed: int, step: int, shape: tuple[int, ...]) -> np.ndarray:
    """Vector step `step`'s N(0, 1) noise for every env and action dimension."""
    return step_generator(seed, step).standard_normal(shape)


def uniform(seed: int, step: int, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Vector step `step`'s uniform actions in [low, high) (float64 bounds, one row per env)."""
    return low + (high - low) * step_generator(seed, step).random(low.shape)
