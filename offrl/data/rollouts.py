"""Rollouts of behaviour policies in `num_envs` envs stepped in lock-step, cut to an exact number
of transitions and returned as Minari episodes.

The envs are split over worker processes (offrl.envs.workers) and the policy is one jitted
batched call per vector step; every env and every policy sample is seeded from (seed, stream),
so a seed gives the same bytes whatever the number of workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.behavior import manifest, sac
from offrl.envs import make_env
from offrl.envs.workers import BlockVectorEnv
from offrl.nets import TanhGaussianActor

NUM_ENVS = 32
"""Envs stepped together: enough to amortise the policy call, few partial episodes at the end."""
WORKERS = min(os.cpu_count() or 1, NUM_ENVS)
"""Processes stepping the envs (MuJoCo's physics is the cost); the data does not depend on it."""
RANDOM_CHUNK = 64
"""Vector steps of uniform random actions sent to the env workers at once (offrl.envs.workers)."""

Advance = Callable[[int], None]  # called with the transitions just collected
Explore = Callable[[manifest.Params, Callable, jax.Array, jax.Array], jax.Array]
"""(actor params, actor apply, observations, key) -> the behaviour's actions for the batch."""


@dataclass(frozen=True)
class Segment:
    """A stretch of a rollout played by one behaviour."""

    params: manifest.Params | None  # actor parameters; None = uniform random actions
    weight: int  # training steps it stands for: its share of the rollout


@dataclass(frozen=True)
class Lockstep:
    """What every segment of one rollout shares: its size, its key and the columns it fills."""

    steps: int  # vector steps
    num_envs: int
    last: int  # envs whose last vector step is kept
    key: jax.Array  # the policy-sampling key, also that of the uniform actions
    low: jax.Array  # action bounds, (num_envs, *action_shape)
    high: jax.Array
    dtype: np.dtype  # the env's action dtype
    columns: dict[str, np.ndarray]  # per-env step columns (step, env, ...), filled as played
    advance: Advance
    explore: Explore  # how a policy acts: SAC's own sampling for locomotion


@functools.partial(jax.jit, static_argnums=(1, 5))
def sample_actions(
    params: manifest.Params, apply_fn, observations, key: jax.Array, step, explore: Explore
) -> jax.Array:
    """The behaviour's actions for a batch at vector step `step`."""
    return explore(params, apply_fn, observations, jax.random.fold_in(key, step))


@functools.partial(jax.jit, static_argnames="steps")
def uniform_actions(
    key: jax.Array, first_step, low: jax.Array, high: jax.Array, steps: int
) -> jax.Array:
    """Uniform random actions for `steps` vector steps from `first_step` on, (steps, envs,
    action_dim); step t's batch is drawn from fold_in(key, t), as if drawn one step at a time."""

    def batch(step):
        return jax.random.uniform(jax.random.fold_in(key, step), low.shape, minval=low, maxval=high)

    return jax.vmap(batch)(first_step + jnp.arange(steps))


def rollout_seeds(seed: int, stream: int, num_envs: int) -> tuple[list[int], jax.Array]:
    """Per-env reset seeds and the policy-sampling key, all from (seed, stream)."""
    states = np.random.SeedSequence([seed, stream]).generate_state(num_envs + 1)
    return [int(s) for s in states[:num_envs]], jax.random.PRNGKey(int(states[-1]))


def segment_ends(weights: Sequence[int], steps: int) -> np.ndarray:
    """The vector step at which each segment ends, shares proportional to `weights`."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.round(cumulative / cumulative[-1] * steps).astype(np.int64)


def split_episodes(
    columns: dict[str, np.ndarray], lengths: Sequence[int], env_seeds: Sequence[int]
) -> list[EpisodeBuffer]:
    """Per-env step columns (step, env, ...) -> episodes, ordered by the step they end at.

    An episode still running at an env's last kept step is closed as truncated.
    """
    ended = []
    for env, length in enumerate(lengths):
        done = columns["terminations"][:length, env] | columns["truncations"][:length, env]
        ends = np.flatnonzero(done).tolist()
        if not ends or ends[-1] != length - 1:
            ends.append(length - 1)
        start = 0
        for end in ends:
            ended.append((end, env, start))
            start = end + 1
    episodes = []
    for end, env, start in sorted(ended):
        window = slice(start, end + 1)
        truncations = columns["truncations"][window, env].copy()
        truncations[-1] |= not columns["terminations"][end, env]
        final = columns["next_observations"][[end], env]
        episodes.append(
            EpisodeBuffer(
                seed=env_seeds[env] if start == 0 else None,
                observations=np.concatenate([columns["observations"][window, env], final]),
                actions=columns["actions"][window, env],
                rewards=columns["rewards"][window, env],
                terminations=columns["terminations"][window, env],
                truncations=truncations,
            )
        )
    return episodes


def step_columns(
    steps: int, num_envs: int, observation_space: gym.Space, action_space: gym.Space
) -> dict[str, np.ndarray]:
    """Empty per-env step columns (step, env, ...) for a whole rollout, in `record`'s order."""
    observations = (steps, num_envs, *observation_space.shape)
    return {
        "observations": np.empty(observations, observation_space.dtype),
        "next_observations": np.empty(observations, observation_space.dtype),
        "actions": np.empty((steps, num_envs, *action_space.shape), action_space.dtype),
        "rewards": np.empty((steps, num_envs), np.float64),
        "terminations": np.empty((steps, num_envs), bool),
        "truncations": np.empty((steps, num_envs), bool),
    }


def record(
    run: Lockstep, at: slice, block: slice, seen, actions, stepped: tuple[np.ndarray, ...]
) -> None:
    """Store what envs `block` saw, did and got back at vector steps `at`."""
    _, final, rewards, terminations, truncations = stepped
    row = (seen, final, actions, rewards, terminations, truncations)
    for name, value in zip(run.columns, row, strict=True):
        run.columns[name][at, block] = value


def played(run: Lockstep, step: int, count: int) -> int:
    """Transitions kept of `count` vector steps from `step` on: the last step keeps `run.last`."""
    return count * run.num_envs - (run.num_envs - run.last if step + count == run.steps else 0)


def play_uniform(
    run: Lockstep, envs: BlockVectorEnv, observations: np.ndarray, step: int, end: int
) -> np.ndarray:
    """Uniform random steps, many per round trip (they need no observation)."""
    while step < end:
        count = min(RANDOM_CHUNK, end - step)
        chunk = uniform_actions(run.key, step, run.low, run.high, RANDOM_CHUNK)
        actions = np.asarray(chunk)[:count]
        stepped = envs.step_many(actions.astype(run.dtype, copy=False))
        # Step t's observations are those the envs returned at step t - 1.
        seen = np.concatenate([observations[None], stepped[0][:-1]])
        record(run, slice(step, step + count), slice(None), seen, actions, stepped)
        observations = stepped[0][-1].copy()
        run.advance(played(run, step, count))
        step += count
    return observations


def policy_actions(
    run: Lockstep,
    actor: TanhGaussianActor,
    params: manifest.Params,
    observations: np.ndarray,
    at: int,
) -> np.ndarray:
    """The policy's sampled actions of vector step `at`, one call on every env's observation."""
    batch = np.asarray(observations, np.float32)  # jit takes numpy without an eager op
    actions = sample_actions(params, actor.apply, batch, run.key, at, run.explore)
    return np.asarray(actions).astype(run.dtype, copy=False)


def play_policy(
    run: Lockstep,
    envs: BlockVectorEnv,
    actor: TanhGaussianActor,
    params: manifest.Params,
    observations: np.ndarray,
    step: int,
    end: int,
) -> np.ndarray:
    """Policy steps, each block sent its next actions as soon as it is back, while the others
    step. A row's action depends only on its own observation (bitwise: rows never mix in the
    MLP), so a block's rows are those one call on every env's next observation gives."""
    sent = policy_actions(run, actor, params, observations, step)
    for block, rows in enumerate(envs.slices):
        envs.submit(block, sent[None, rows])
    for now in range(step, end):
        upcoming, this_step = np.empty_like(sent), slice(now, now + 1)
        for block, rows in enumerate(envs.slices):
            stepped = envs.collect(block)
            record(run, this_step, rows, observations[None, rows], sent[None, rows], stepped)
            observations[rows] = stepped[0][-1]
            if now + 1 < end:
                upcoming[rows] = policy_actions(run, actor, params, observations, now + 1)[rows]
                envs.submit(block, upcoming[None, rows])
        sent = upcoming
        run.advance(played(run, now, 1))
    return observations


def rollout(
    env_spec: EnvSpec,
    actor: TanhGaussianActor | None,
    segments: Sequence[Segment],
    transitions: int,
    seed: int,
    stream: int,
    num_envs: int = NUM_ENVS,
    workers: int = 1,
    advance: Advance = lambda n: None,
    explore: Explore = sac.explore,
) -> list[EpisodeBuffer]:
    """Exactly `transitions` steps of `num_envs` envs played in lock-step, as episodes.

    The segments play one after the other, each for its share of the vector steps; the envs'
    episodes carry on across a switch. On the last vector step only as many envs as needed
    keep their transition.
    """
    if transitions < 1:
        return []
    num_envs = min(num_envs, transitions)
    steps = -(-transitions // num_envs)
    last = transitions - (steps - 1) * num_envs  # envs whose last vector step is kept
    lengths = [steps if env < last else steps - 1 for env in range(num_envs)]
    ends = segment_ends([s.weight for s in segments], steps)
    env_seeds, key = rollout_seeds(seed, stream, num_envs)
    probe = make_env(env_spec)
    obs_space, space = probe.observation_space, probe.action_space
    probe.close()
    run = Lockstep(
        steps=steps,
        num_envs=num_envs,
        last=last,
        key=key,
        low=jnp.broadcast_to(jnp.asarray(space.low), (num_envs, *space.shape)),
        high=jnp.broadcast_to(jnp.asarray(space.high), (num_envs, *space.shape)),
        dtype=space.dtype,
        columns=step_columns(steps, num_envs, obs_space, space),
        advance=advance,
        explore=explore,
    )
    envs = BlockVectorEnv(env_spec, num_envs, workers)
    try:
        observations = envs.reset(env_seeds)
        step = 0
        for segment, end in zip(segments, ends.tolist(), strict=True):
            if step < end and segment.params is None:
                observations = play_uniform(run, envs, observations, step, end)
            elif step < end:
                observations = play_policy(
                    run, envs, actor, segment.params, observations, step, end
                )
            step = end
    finally:
        envs.close()
    return split_episodes(run.columns, lengths, env_seeds)
