"""Rollouts of behaviour policies in `num_envs` envs stepped in lock-step, cut to an exact number
of transitions and returned as Minari episodes.

The envs are split over worker processes (offrl.envs.workers) and the policy is one batched
float64 numpy call per block of envs (offrl.behavior.portable: the same bits on every CPU); every
env and every action's noise is seeded from (seed, stream), so a seed gives the same bytes
whatever the number of workers and the processor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.behavior import manifest, portable
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
Explore = Callable[[portable.Actor, np.ndarray, np.ndarray], np.ndarray]
"""(actor, observations, N(0, 1) noise per action dimension) -> the behaviour's actions."""


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
    noise_seed: int  # seeds each vector step's policy noise, or its uniform actions
    low: np.ndarray  # float64 action bounds, (num_envs, *action_shape)
    high: np.ndarray
    dtype: np.dtype  # the env's action dtype
    columns: dict[str, np.ndarray]  # per-env step columns (step, env, ...), filled as played
    advance: Advance
    explore: Explore  # how a policy acts: SAC's own sampling for locomotion


def rollout_seeds(seed: int, stream: int, num_envs: int) -> tuple[list[int], int]:
    """Per-env reset seeds and the seed of the actions' noise, all from (seed, stream)."""
    states = np.random.SeedSequence([seed, stream]).generate_state(num_envs + 1)
    return [int(s) for s in states[:num_envs]], int(states[-1])


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
        actions = np.stack(
            [
                portable.uniform(run.noise_seed, t, run.low, run.high)
                for t in range(step, step + count)
            ]
        ).astype(run.dtype)
        stepped = envs.step_many(actions)
        # Step t's observations are those the envs returned at step t - 1.
        seen = np.concatenate([observations[None], stepped[0][:-1]])
        record(run, slice(step, step + count), slice(None), seen, actions, stepped)
        observations = stepped[0][-1].copy()
        run.advance(played(run, step, count))
        step += count
    return observations


def policy_actions(
    run: Lockstep, actor: portable.Actor, observations: np.ndarray, at: int, rows: slice
) -> np.ndarray:
    """The policy's sampled actions of vector step `at` for envs `rows`."""
    noise = portable.standard_normal(run.noise_seed, at, run.low.shape)[rows]
    return run.explore(actor, observations[rows], noise).astype(run.dtype)


def play_policy(
    run: Lockstep,
    envs: BlockVectorEnv,
    actor: portable.Actor,
    observations: np.ndarray,
    step: int,
    end: int,
) -> np.ndarray:
    """Policy steps, each block sent its next actions as soon as it is back, while the others
    step. A row's action depends only on its own observation and its step's noise (rows never
    mix in the MLP), so a block's rows are those one call on every env's would give."""
    sent = policy_actions(run, actor, observations, step, slice(None))
    for block, rows in enumerate(envs.slices):
        envs.submit(block, sent[None, rows])
    for now in range(step, end):
        upcoming, this_step = np.empty_like(sent), slice(now, now + 1)
        for block, rows in enumerate(envs.slices):
            stepped = envs.collect(block)
            record(run, this_step, rows, observations[None, rows], sent[None, rows], stepped)
            observations[rows] = stepped[0][-1]
            if now + 1 < end:
                upcoming[rows] = policy_actions(run, actor, observations, now + 1, rows)
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
    explore: Explore = portable.sac_sample,
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
    env_seeds, noise_seed = rollout_seeds(seed, stream, num_envs)
    probe = make_env(env_spec)
    obs_space, space = probe.observation_space, probe.action_space
    probe.close()
    run = Lockstep(
        steps=steps,
        num_envs=num_envs,
        last=last,
        noise_seed=noise_seed,
        low=np.broadcast_to(np.asarray(space.low, np.float64), (num_envs, *space.shape)),
        high=np.broadcast_to(np.asarray(space.high, np.float64), (num_envs, *space.shape)),
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
                policy = portable.Actor.of(actor, segment.params)
                observations = play_policy(run, envs, policy, observations, step, end)
            step = end
    finally:
        envs.close()
    return split_episodes(run.columns, lengths, env_seeds)
