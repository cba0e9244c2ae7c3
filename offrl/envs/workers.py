"""Many envs of one spec stepped in lock-step, optionally by several worker processes.

The dataset generators spend their time in MuJoCo's physics, so `BlockVectorEnv` splits the envs
into contiguous blocks, each an `EnvBlock` in its own process. `submit` and `collect` work per
block, so the caller can compute one block's next actions while the others step. Actions that do
not depend on the observations (uniform random ones) go out many steps at a time: one round trip
per worker for the lot, where per-step round trips left the workers idle a fifth of the time.
This module imports only gymnasium and numpy: a spawned worker starts in about a second.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection

import numpy as np
from gymnasium.envs.registration import EnvSpec

from offrl.envs import make_env


class EnvBlock:
    """Envs stepped one after another in this process; an env that ends is reset in the same step,
    so every step returned is a real transition (gymnasium's SAME_STEP autoreset, without
    SyncVectorEnv's per-step info merging, a fifth of a Hopper step's time)."""

    def __init__(self, env_spec: EnvSpec, num_envs: int):
        self.envs = [make_env(env_spec) for _ in range(num_envs)]

    def reset(self, seeds: list[int]) -> np.ndarray:
        return np.stack(
            [env.reset(seed=seed)[0] for env, seed in zip(self.envs, seeds, strict=True)]
        )

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """(observations, final observations, rewards, terminations, truncations): an env that
        just ended returns its next episode's first observation, and its last one in `final`."""
        observations, finals, rewards, terminations, truncations = [], [], [], [], []
        for env, action in zip(self.envs, actions, strict=True):
            observation, reward, terminated, truncated, _ = env.step(action)
            finals.append(observation)
            if terminated or truncated:
                observation, _ = env.reset()
            observations.append(observation)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
        return (
            np.stack(observations),
            np.stack(finals),
            np.asarray(rewards, np.float64),
            np.asarray(terminations, bool),
            np.asarray(truncations, bool),
        )

    def step_many(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """`step` through each batch of `actions` (steps, envs, ...) in turn; columns stacked."""
        return tuple(np.stack(column) for column in zip(*map(self.step, actions), strict=True))

    def close(self) -> None:
        for env in self.envs:
            env.close()


def serve_envs(connection: Connection, env_spec: EnvSpec, num_envs: int) -> None:
    """A worker process: resets or steps its block of envs on request until sent None."""
    envs = EnvBlock(env_spec, num_envs)
    try:
        while (request := connection.recv()) is not None:
            command, payload = request
            connection.send(envs.reset(payload) if command == "reset" else envs.step_many(payload))
    finally:
        envs.close()
        connection.close()


class BlockVectorEnv:
    """`num_envs` envs, split into contiguous blocks stepped by `workers` processes
    (all in this process when `workers` is 1). Each env's trajectory depends only on its seed
    and actions, so the data is the same for any number of workers."""

    def __init__(self, env_spec: EnvSpec, num_envs: int, workers: int):
        self.blocks = [len(b) for b in np.array_split(np.arange(num_envs), workers) if len(b)]
        self.local = EnvBlock(env_spec, num_envs) if len(self.blocks) == 1 else None
        self.pending: np.ndarray | None = None  # the local block's submitted actions
        self.connections: list[Connection] = []
        self.processes = []
        context = multiprocessing.get_context("spawn")  # fork is unsafe once JAX runs threads
        for size in self.blocks if self.local is None else []:
            mine, theirs = context.Pipe()
            process = context.Process(target=serve_envs, args=(theirs, env_spec, size), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)

    def reset(self, seeds: list[int]) -> np.ndarray:
        if self.local is not None:
            return self.local.reset(seeds)
        for connection, envs in zip(self.connections, self.slices, strict=True):
            connection.send(("reset", seeds[envs]))
        return np.concatenate([connection.recv() for connection in self.connections])

    @property
    def slices(self) -> list[slice]:
        """The envs of each block, in order."""
        ends = np.cumsum(self.blocks).tolist()
        return [slice(end - size, end) for size, end in zip(self.blocks, ends, strict=True)]

    def submit(self, block: int, actions: np.ndarray) -> None:
        """Start `block`'s envs through each batch of `actions` (steps, block envs, ...) in turn;
        `collect(block)` returns what they did. A worker steps while the caller works on."""
        if self.local is not None:
            self.pending = actions
        else:
            self.connections[block].send(("step", actions))

    def collect(self, block: int) -> tuple[np.ndarray, ...]:
        """What `submit` started: (observations, finals, rewards, terminations, truncations), each
        (steps, block envs, ...) as `EnvBlock.step` returns them."""
        if self.local is not None:
            return self.local.step_many(self.pending)
        return self.connections[block].recv()

    def step_many(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every env through each batch of `actions` (steps, envs, ...) in turn, in one round trip
        per worker; `collect`'s columns for all envs."""
        for block, envs in enumerate(self.slices):
            self.submit(block, actions[:, envs])
        replies = [self.collect(block) for block in range(len(self.blocks))]
        return tuple(np.concatenate(column, axis=1) for column in zip(*replies, strict=True))

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        for connection, process in zip(self.connections, self.processes, strict=True):
            with contextlib.suppress(OSError):
                connection.send(None)
            connection.close()
            process.join(timeout=10)
            if process.is_alive():  # stuck in an env step: it holds nothing worth waiting for
                process.terminate()


class WorkerVectorEnv:
    """The vector-env calls evaluation makes (`reset(seed=...)`, `step`, `close`) on a
    `BlockVectorEnv`: evaluation envs stepped by worker processes. An env that ends starts its
    next episode in the same step (SyncVectorEnv: in the next), which no evaluation counts."""

    def __init__(self, env_spec: EnvSpec, num_envs: int, workers: int):
        self.envs = BlockVectorEnv(env_spec, num_envs, workers)
        self.num_envs = num_envs

    def reset(self, seed: list[int]) -> tuple[np.ndarray, dict]:
        return self.envs.reset(list(seed)), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        observations, _, rewards, terminated, truncated = (
            column[0] for column in self.envs.step_many(np.asarray(actions)[None])
        )
        return observations, rewards, terminated, truncated, {}

    def close(self) -> None:
        self.envs.close()
