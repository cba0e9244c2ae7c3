"""Generalised-Gaussian TD-error math for GGD-TD (docs/algorithms.md §5): small pure functions.

Conventions: TD errors `delta` and shapes `beta` of an ensemble have shape (N, B), member axis 0
(the layout `offrl.nets.CriticEnsemble` returns), batch axis 1. The GGD scale alpha is fixed to 1
(the paper's "beta head"), so the density is p(delta) = beta / (2 Gamma(1/beta)) exp(-|delta|^beta).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

LossForm = Literal["paper", "code"]

BETA_MIN = 0.1
"""Floor of the shape. Below ~0.07 the aleatoric variance Gamma(3/beta)/Gamma(1/beta) overflows
float32 (it is 2.5e25 at 0.1 and 1e63 at 0.05), lgamma(1/beta) grows like log(1/beta)/beta and its
gradient like log(1/beta)/beta^2; at 0.1 these are 12.8 and 225. The paper reports beta in (0, 2],
and beta = 0.1 already means an excess kurtosis of 2.8e6, so the floor removes nothing useful."""
BETA_MAX = 5.0
"""Cap of the shape. With alpha = 1 the paper-form term |delta|^beta overflows float32 once
beta log|delta| > 88: at beta = 5 only for |delta| > 5e7 (at beta = 10 already for |delta| > 7e3).
beta = 5 is close to uniform (excess kurtosis -1.0 against -1.2 in the limit); the paper-form NLL
drives beta up without bound whenever |delta| < 1, so the cap is reached in practice."""
ABS_FLOOR = 1e-12
"""|delta| is floored here inside |delta|^beta, so that the cusp at 0 (infinite slope for beta < 1,
log 0 in d/d beta) yields finite gradients; the change of the loss is below float32 resolution."""
VARIANCE_FLOOR = 1e-6
"""Floor of the per-sample TD-error variance (the released code's EPS)."""


def beta_from_raw(raw: jax.Array) -> jax.Array:
    """beta = BETA_MIN + (BETA_MAX - BETA_MIN) tanh(softplus(raw) / (BETA_MAX - BETA_MIN)).

    The released code uses softplus(raw). The floor is added (softplus underflows to 0 for very
    negative raw, then log beta = -inf); the cap is a smooth tanh saturation: beta differs from
    softplus(raw) by at most 0.11 while softplus(raw) <= 2 (the range the paper reports) and,
    unlike a hard clip, never has exactly zero gradient (Adam rescales small gradients, so beta
    can come back down from the cap).
    """
    span = BETA_MAX - BETA_MIN
    return BETA_MIN + span * jnp.tanh(jax.nn.softplus(raw) / span)


def ggd_nll(delta: jax.Array, beta: jax.Array, form: LossForm = "paper") -> jax.Array:
    """Elementwise GGD negative log-likelihood of `delta` (alpha = 1).

    paper: |delta|^beta - log beta + log Gamma(1/beta) + log 2, exactly -log p(delta).
    code:  beta |delta| - log beta + log Gamma(1/beta), as the released `ggd_nll_loss`
           (linear data term, log 2 dropped).
    """
    abs_delta = jnp.abs(delta)
    normaliser = -jnp.log(beta) + gammaln(1.0 / beta)
    if form == "paper":
        data = jnp.exp(beta * jnp.log(jnp.maximum(abs_delta, ABS_FLOOR)))
        return data + normaliser + jnp.log(2.0)
    if form == "code":
        return beta * abs_delta + normaliser
    raise ValueError(f"unknown GGD loss form {form!r}; expected 'paper' or 'code'")


def shape_weights(beta: jax.Array) -> jax.Array:
    """Risk-averse weights omega_i = beta_i / sum_j beta_j over members, per sample.

    Not detached, as in the released code: gradients also flow through omega.
    """
    return beta / beta.sum(axis=0, keepdims=True)


def weighted_ggd_nll(delta: jax.Array, beta: jax.Array, form: LossForm = "paper") -> jax.Array:
    """mean_b sum_i omega_{i,b} nll(delta_{i,b}; beta_{i,b}): one ensemble's GGD critic loss."""
    return (shape_weights(beta) * ggd_nll(delta, beta, form)).sum(axis=0).mean()


def aleatoric_variance(beta: jax.Array) -> jax.Array:
    """Var[delta] = Gamma(3/beta) / Gamma(1/beta) of the GGD with alpha = 1."""
    return jnp.exp(gammaln(3.0 / beta) - gammaln(1.0 / beta))


def excess_kurtosis(beta: jax.Array) -> jax.Array:
    """Gamma(5/beta) Gamma(1/beta) / Gamma(3/beta)^2 - 3: 0 at beta = 2, 3 at beta = 1."""
    return jnp.exp(gammaln(5.0 / beta) + gammaln(1.0 / beta) - 2.0 * gammaln(3.0 / beta)) - 3.0


def sample_excess_kurtosis(x: jax.Array) -> jax.Array:
    """Excess kurtosis of the N values along axis 0, as SciPy's `kurtosis(x, axis=0, bias=False)`.

    g2 = m4 / m2^2 - 3 (population moments); for N > 3 the bias-corrected
    G2 = ((N + 1) g2 + 6) (N - 1) / ((N - 2)(N - 3)); SciPy leaves N <= 3 uncorrected, so do we.
    Where the N values are (numerically) equal SciPy returns NaN; here g2 = 0 there, which keeps
    the result finite (such a sample's variance is floored anyway).
    """
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    m2 = (centred**2).mean(axis=0)
    m4 = (centred**4).mean(axis=0)
    spread = m2 > 1e-12
    g2 = jnp.where(spread, m4 / jnp.where(spread, m2, 1.0) ** 2 - 3.0, 0.0)
    if n > 3:
        g2 = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    return g2


def mbbe_variance(td_errors: jax.Array) -> jax.Array:
    """BIEV's per-sample TD-error variance across the N members (axis 0), MBBE-corrected.

    sigma^2 = s^2 / (kappa / N + (N + 1) / (N - 1)), s^2 the population variance (ddof 0),
    kappa the bias-corrected sample excess kurtosis; floored at VARIANCE_FLOOR.
    """
    n = td_errors.shape[0]
    s2 = td_errors.var(axis=0)
    denominator = sample_excess_kurtosis(td_errors) / n + (n + 1) / (n - 1)
    return jnp.maximum(s2 / denominator, VARIANCE_FLOOR)


def inverse_variance_weights(variance: jax.Array, xi: jax.Array | float = 0.0) -> jax.Array:
    """w_b = (variance_b + xi)^-1 / sum_b' (variance_b' + xi)^-1."""
    inverse = 1.0 / (variance + xi)
    return inverse / inverse.sum(axis=-1, keepdims=True)


def effective_batch_size(weights: jax.Array) -> jax.Array:
    """1 / sum_b w_b^2 of normalised weights (B for uniform weights, 1 for a single sample)."""
    return 1.0 / (weights**2).sum(axis=-1)


def solve_xi(variance: jax.Array, min_ebs: float, points: int = 16, rounds: int = 4) -> jax.Array:
    """The smallest xi >= 0 (to ~1e-3 relative) with effective batch size >= min_ebs.

    xi = 0 when already met. Otherwise a bisection over log xi inside jit, generalised to `points`
    probes per round (points = 2 is plain bisection): each round keeps the bracket [a, b] with b
    feasible, probes a + (b - a) j / points for j = 1..points at once and moves to the first
    feasible cell, so the bracket shrinks `points`-fold per round in one fused, vectorised step
    (few sequential rounds, no host round trip; the released code runs Nelder-Mead on the host).

    The upper end B max(variance) is always feasible: with xi = B max(variance) the weights lie
    within a ratio 1 + 1/B, so by Kantorovich's inequality EBS >= B (1 - 1/(4 B^2)) > B - 1. The
    lower end 1e-8 min(variance) is below float32's resolution of variance + xi. The result is
    always a feasible end, so the minimum effective batch size holds even if EBS(xi) were not
    monotone.
    """
    batch = variance.shape[-1]

    def ebs(log_xi):
        inverse = 1.0 / (variance + jnp.exp(log_xi)[..., None])
        return inverse.sum(axis=-1) ** 2 / (inverse**2).sum(axis=-1)

    low = jnp.log(1e-8 * variance.min())
    high = jnp.log(batch * variance.max())
    fractions = jnp.arange(1, points + 1) / points

    def shrink(_, bracket):
        low, high = bracket
        probes = low + (high - low) * fractions
        first = jnp.argmax(ebs(probes) >= min_ebs)  # the last probe (= high) is feasible
        return low + (high - low) * first / points, probes[first]

    _, high = jax.lax.fori_loop(0, rounds, shrink, (low, high), unroll=True)
    met = effective_batch_size(inverse_variance_weights(variance)) >= min_ebs
    return jnp.where(met, 0.0, jnp.exp(high))


def biev_weights(
    td_errors: jax.Array, min_batch_size: int = 16
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Batch inverse error-variance weights (B,), held constant in the gradient.

    The effective batch size is kept >= min(B - 1, min_batch_size). Returns (weights, effective
    batch size, xi).
    """
    td_errors = jax.lax.stop_gradient(td_errors)
    variance = mbbe_variance(td_errors)
    xi = solve_xi(variance, min(variance.shape[-1] - 1, min_batch_size))
    weights = inverse_variance_weights(variance, xi)
    return weights, effective_batch_size(weights), xi


def weighted_absolute_error(td_errors: jax.Array, weights: jax.Array) -> jax.Array:
    """mean_b sum_i w_b |delta_{i,b}|, the released BIEV term with loss_type "mae".

    As in the released code the per-sample sum is averaged over the batch although the weights
    already sum to 1, so the term carries an extra factor 1/B.
    """
    return (jax.lax.stop_gradient(weights) * jnp.abs(td_errors).sum(axis=0)).mean()
