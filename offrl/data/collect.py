"""Roll a named policy out in a real gymnasium env and store the steps as a Minari dataset."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.data.minari_io import check_writable, write_minari_dataset
from offrl.errors import ConfigError

Policy = Callable[[object], np.ndarray]  # observation -> action
PolicyFactory = Callable[[gym.Env, int], Policy]  # (env, seed) -> policy


def uniform_policy(env: gym.Env, seed: int) -> Policy:
    """Uniform actions from the env's action space, seeded so a rollout is reproducible."""
    action_space = env.action_space
    action_space.seed(seed)
    return lambda observation: action_space.sample()


# Policies by name; trained ("shipped") policies register here too.
POLICIES: dict[str, PolicyFactory] = {"random": uniform_policy}


@dataclass(frozen=True)
class CollectInfo:
    """Summary of one collection run."""

    dataset_id: str
    path: Path
    env_id: str
    policy: str
    seed: int
    steps: int
    episodes: int
    terminated: int  # episodes that ended in a termination (a true terminal state)
    truncated: int  # episodes cut by the time limit or by the step budget
    episode_returns: np.ndarray = field(repr=False)
    seconds: float


@dataclass
class _Episode:
    """Growing lists for the episode being played."""

    seed: int | None
    observations: list
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    terminations: list = field(default_factory=list)
    truncations: list = field(default_factory=list)

    def to_buffer(self) -> EpisodeBuffer:
        return EpisodeBuffer(
            seed=self.seed,
            observations=_stack(self.observations),
            actions=np.stack(self.actions),
            rewards=np.asarray(self.rewards, dtype=np.float64),
            terminations=np.asarray(self.terminations, dtype=bool),
            truncations=np.asarray(self.truncations, dtype=bool),
        )


def _stack(observations: list):
    """Stack per-step observations; Dict observations stack key by key (minari's layout)."""
    if isinstance(observations[0], Mapping):
        return {key: _stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


def play_episodes(env: gym.Env, policy: Policy, steps: int, seed: int) -> list[EpisodeBuffer]:
    """Exactly `steps` transitions; the env is seeded once, then resets continue its RNG.

    An episode still running when the budget ends is closed as truncated.
    """
    observation, _ = env.reset(seed=seed)
    episode = _Episode(seed=seed, observations=[observation])
    episodes = []
    for step in range(steps):
        action = policy(observation)
        observation, reward, terminated, truncated, _ = env.step(action)
        last = step == steps - 1
        episode.observations.append(observation)
        episode.actions.append(action)
        episode.rewards.append(float(reward))
        episode.terminations.append(bool(terminated))
        episode.truncations.append(bool(truncated or (last and not terminated)))
        if terminated or truncated or last:
            episodes.append(episode.to_buffer())
            if not last:
                observation, _ = env.reset()
                episode = _Episode(seed=None, observations=[observation])
    return episodes


def _make_collection_env(env_id: str) -> gym.Env:
    """gym.make, with an unknown or broken id turned into one clear ConfigError."""
    try:
        return gym.make(env_id)
    except gym.error.Error as error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Cannot create gymnasium environment '{env_id}' ({error}).{hint} "
            "Pass a registered id such as Hopper-v5."
        ) from error


def collect(
    env_id: str,
    policy: str,
    steps: int,
    dataset_id: str,
    seed: int = 0,
    overwrite: bool = False,
) -> CollectInfo:
    """Roll `policy` out in `env_id` for exactly `steps` transitions and write Minari `dataset_id`.

    Deterministic for a seed. Every input is checked before the first step is taken, and the
    dataset appears only once completely written.
    """
    check_writable(dataset_id, overwrite)
    if policy not in POLICIES:
        raise ConfigError(f"Unknown policy '{policy}'. Known policies: {', '.join(POLICIES)}.")
    if steps < 1:
        raise ConfigError(f"--steps must be a positive number of transitions, got {steps}.")
    started = time.perf_counter()
    env = _make_collection_env(env_id)
    try:
        buffers = play_episodes(env, POLICIES[policy](env, seed), steps, seed)
        path = write_minari_dataset(
            dataset_id,
            buffers,
            env,
            algorithm_name=f"offrl-collect/{policy}",
            description=f"{steps} transitions of the '{policy}' policy in {env_id}, seed {seed}.",
            overwrite=overwrite,
        )
    finally:
        env.close()
    return CollectInfo(
        dataset_id=dataset_id,
        path=path,
        env_id=env_id,
        policy=policy,
        seed=seed,
        steps=steps,
        episodes=len(buffers),
        terminated=sum(bool(b.terminations[-1]) for b in buffers),
        truncated=sum(bool(b.truncations[-1]) for b in buffers),
        episode_returns=np.asarray([float(np.sum(b.rewards)) for b in buffers]),
        seconds=time.perf_counter() - started,
    )
