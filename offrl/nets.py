"""Flax modules shared by the agents, initialised like PyTorch's nn.Linear (the papers' code)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(fan_in: int) -> Callable:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for both Linear weight and bias."""
    bound = 1.0 / jnp.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """A dense layer whose kernel and bias follow PyTorch's default nn.Linear initialisation."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_uniform(fan_in), (fan_in, self.features))
        bias = self.param("bias", torch_uniform(fan_in), (self.features,))
        return x @ kernel + bias


class MLP(nn.Module):
    """ReLU hidden layers (each normalised by LayerNorm before its ReLU if `layer_norm`), linear
    output."""

    hidden_dims: Sequence[int]
    out_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_dims:
            x = TorchDense(width)(x)
            x = nn.relu(nn.LayerNorm()(x) if self.layer_norm else x)
        return TorchDense(self.out_dim)(x)


class DeterministicActor(nn.Module):
    """s -> max_action * tanh(MLP(s))."""

    hidden_dims: Sequence[int]
    action_dim: int
    max_action: float = 1.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return self.max_action * jnp.tanh(MLP(self.hidden_dims, self.action_dim)(observations))


class Critic(nn.Module):
    """(s, a) -> Q(s, a) (or `out_dim` heads when a member predicts more than Q)."""

    hidden_dims: Sequence[int]
    out_dim: int = 1
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        x = jnp.concatenate([observations, actions], -1)
        out = MLP(self.hidden_dims, self.out_dim, self.layer_norm)(x)
        return out[..., 0] if self.out_dim == 1 else out


class CriticEnsemble(nn.Module):
    """`num_members` independent critics evaluated in one vmapped call; output axis 0 = member.

    Every parameter has the member axis first, so the first k members alone are the same module
    with `num_members=k` applied to each parameter's first k entries (`offrl.td3.leading_members`).
    """

    hidden_dims: Sequence[int]
    num_members: int = 2
    out_dim: int = 1
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        members = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_members,
        )
        return members(self.hidden_dims, self.out_dim, self.layer_norm)(observations, actions)


class TanhGaussianActor(nn.Module):
    """SAC's policy: a Gaussian over pre-tanh actions, squashed to [-max_action, max_action]."""

    hidden_dims: Sequence[int]
    action_dim: int
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mean, log_std) of the pre-tanh Gaussian."""
        out = MLP(self.hidden_dims, 2 * self.action_dim)(observations)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised tanh(u), u ~ N(mean, std), and its log-density with the tanh correction."""
    noise = jax.random.normal(key, mean.shape)
    pre_tanh = mean + jnp.exp(log_std) * noise
    gaussian = -0.5 * noise**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    # log(1 - tanh(u)^2) written stably as 2 (log 2 - u - softplus(-2u)).
    correction = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.tanh(pre_tanh), (gaussian - correction).sum(axis=-1)


class VAE(nn.Module):
    """BCQ-style conditional VAE of actions given states (A2PR's "augmented behaviour policy").

    Encoder (s, a) -> hidden ReLU layers -> (mean, log_std) of z, log_std clamped to
    [log_std_min, log_std_max]; decoder (s, z) -> hidden ReLU layers -> max_action * tanh.
    The two encoder heads of the PyTorch code are one output layer here (same fan-in, so the
    same initialisation); the official sizes are 750-750 and latent_dim = 2 * action_dim.
    """

    hidden_dims: Sequence[int]
    action_dim: int
    latent_dim: int
    max_action: float = 1.0
    log_std_min: float = -4.0
    log_std_max: float = 15.0

    def setup(self) -> None:
        self.encoder = MLP(self.hidden_dims, 2 * self.latent_dim)
        self.decoder = MLP(self.hidden_dims, self.action_dim)

    def __call__(
        self, observations: jax.Array, actions: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(reconstruction, mean, log_std) with the reparameterised z = mean + std * eps."""
        mean, log_std = self.encode(observations, actions)
        z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        return self.decode(observations, z), mean, log_std

    def encode(self, observations: jax.Array, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = self.encoder(jnp.concatenate([observations, actions], -1))
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)

    def decode(self, observations: jax.Array, z: jax.Array) -> jax.Array:
        return self.max_action * jnp.tanh(self.decoder(jnp.concatenate([observations, z], -1)))
