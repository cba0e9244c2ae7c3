"""d3rlpy's side of `offrl peer`: importing it, the replay buffer of offrl's rows, the learner
with offrl's official config and state normalisation, and the critics' values it records."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any

import numpy as np

from benchmarks.configs import config_for
from offrl.data.normalization import fit_normalizer, transform_rewards
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError, DatasetError

PEER_AGENTS = ("td3bc", "prdc")
VALUE_ROWS = 5000
"""Dataset rows whose Q-values each evaluation records (`q_mean`)."""


def episode_bounds(transitions: Transitions) -> list[tuple[int, int, bool]]:
    """(first row, one past the last row, terminated) of each episode in the transition table.

    An episode ends at a terminal row, or where the next row does not start from this row's
    next observation (a timeout, or the end of the table).
    """
    observations = np.asarray(transitions.observations)
    next_observations = np.asarray(transitions.next_observations)
    dones = np.asarray(transitions.dones) > 0.5
    continues = np.all(next_observations[:-1] == observations[1:], axis=1) & ~dones[:-1]
    ends = np.flatnonzero(~continues) + 1
    starts = np.concatenate([[0], ends])
    stops = np.concatenate([ends, [len(dones)]])
    return [(int(a), int(b), bool(dones[b - 1])) for a, b in zip(starts, stops, strict=True)]


def import_d3rlpy() -> Any:
    """d3rlpy, quietly (its `gym` import prints a deprecation notice), or a ConfigError."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import d3rlpy
    except ImportError as err:
        raise ConfigError(f"offrl peer needs d3rlpy: pip install 'offrl[peers]' ({err})") from err
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return d3rlpy


def replay_buffer(transitions: Transitions) -> Any:
    """d3rlpy's replay buffer holding every row once, as the transition d3rlpy samples.

    A terminated episode's rows are d3rlpy transitions as they are; an episode that ends without
    termination gets its last next observation appended (with a zero action and reward that are
    never sampled), so that d3rlpy's transition count equals the row count.
    """
    d3rlpy = import_d3rlpy()
    observations = np.asarray(transitions.observations, dtype=np.float32)
    actions = np.asarray(transitions.actions, dtype=np.float32)
    rewards = np.asarray(transitions.rewards, dtype=np.float32).reshape(-1, 1)
    next_observations = np.asarray(transitions.next_observations, dtype=np.float32)
    episodes = []
    for start, stop, terminated in episode_bounds(transitions):
        obs, act, rew = observations[start:stop], actions[start:stop], rewards[start:stop]
        if not terminated:
            obs = np.concatenate([obs, next_observations[stop - 1 : stop]])
            act = np.concatenate([act, np.zeros_like(act[:1])])
            rew = np.concatenate([rew, np.zeros_like(rew[:1])])
        episodes.append(d3rlpy.dataset.Episode(obs, act, rew, terminated))
    buffer = d3rlpy.dataset.ReplayBuffer(d3rlpy.dataset.InfiniteBuffer(), episodes=episodes)
    if buffer.transition_count != len(rewards):
        raise DatasetError(
            f"d3rlpy's buffer holds {buffer.transition_count} transitions, the dataset "
            f"{len(rewards)} rows: the episode split is wrong"
        )
    return buffer


def peer_config(agent: str, task: str) -> tuple[Any, dict[str, Any]]:
    """offrl's official config for (agent, task) and the d3rlpy config fields it sets."""
    if agent not in PEER_AGENTS:
        raise ConfigError(f"d3rlpy peers: {', '.join(PEER_AGENTS)}; got {agent!r}")
    ours = config_for(agent, task)
    if tuple(ours.hidden_dims) != (256, 256):
        raise ConfigError(
            f"d3rlpy's default encoder is 256-256, the config asks {ours.hidden_dims}"
        )
    fields = {
        "batch_size": ours.batch_size,
        "gamma": ours.discount,
        "tau": ours.tau,
        "actor_learning_rate": ours.actor_lr,
        "critic_learning_rate": ours.critic_lr,
        "target_smoothing_sigma": ours.policy_noise,
        "target_smoothing_clip": ours.noise_clip,
        "update_actor_interval": ours.policy_freq,
        "alpha": ours.alpha,
    }
    if agent == "prdc":
        fields["beta"] = ours.beta
    return ours, fields


def learner(agent: str, task: str, transitions: Transitions) -> tuple[Any, Transitions]:
    """d3rlpy's learner for (agent, task) with offrl's official config and state normalisation,
    and the transitions it trains on (offrl's reward transform applied); not yet built."""
    d3rlpy = import_d3rlpy()
    ours, fields = peer_config(agent, task)
    transitions = transform_rewards(transitions, ours.reward_scale, ours.reward_shift)
    normalizer = fit_normalizer(np.asarray(transitions.observations))
    # offrl's std already carries TD3+BC's +1e-3, so d3rlpy adds nothing more.
    scaler = d3rlpy.preprocessing.StandardObservationScaler(
        mean=normalizer.mean, std=normalizer.std, eps=0.0
    )
    configs = {"td3bc": d3rlpy.algos.TD3PlusBCConfig, "prdc": d3rlpy.algos.PRDCConfig}
    return configs[agent](observation_scaler=scaler, **fields).create(device=False), transitions


def value_rows(transitions: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """(states, actions) of VALUE_ROWS fixed rows, drawn by their own generator so that d3rlpy's
    sampling (numpy's global RNG) is untouched."""
    count = len(transitions.rewards)
    rows = np.sort(np.random.default_rng(0).choice(count, min(VALUE_ROWS, count), replace=False))
    states = np.asarray(transitions.observations, np.float32)[rows]
    return states, np.asarray(transitions.actions, np.float32)[rows]


def data_q_mean(algo: Any, rows: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean over `rows` and both critics of Q(s, a) at the data's actions: what offrl's
    `q_mean` averages over its training batches, so a diverging critic shows in both alike."""
    return float(algo.predict_value(*rows).mean())
