"""Online SAC training of behaviour policies: env steps on the host, gradient steps fused.

Every `update_every` env steps the new transitions are copied to the device replay buffer in one
piece and as many gradient steps run in one compiled scan (Spinning Up's schedule). Every
`eval_every` steps the deterministic policy is evaluated and the actor is saved as a snapshot;
every `checkpoint_every` steps the whole state (agent, replay buffer, key) is checkpointed, and a
restarted run resumes from there with a fresh episode.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import flax.serialization
import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from offrl.agent import DatasetSpec
from offrl.behavior import sac
from offrl.behavior.run_record import BehaviorRun, read_behavior_run, write_behavior_run
from offrl.checkpoint import Checkpointer
from offrl.data.transitions import Transitions
from offrl.errors import ConfigError
from offrl.evaluate import run_episodes
from offrl.run_files import append_records, truncate_records


@dataclasses.dataclass(frozen=True)
class OnlineProtocol:
    steps: int = 1_000_000
    """Environment steps (= gradient steps once updates start)."""
    start_steps: int = 10_000
    """Uniform random actions for the first steps, as SAC and rlkit do."""
    update_after: int = 1_000
    """No gradient steps before this many transitions are stored."""
    update_every: int = 50
    """Env steps between bursts of as many fused gradient steps."""
    eval_every: int = 10_000
    """Evaluate the deterministic policy and save an actor snapshot this often."""
    eval_episodes: int = 10
    checkpoint_every: int = 50_000
    """Checkpoint agent, replay buffer and key this often (a multiple of eval_every)."""

    def validate(self) -> None:
        if min(self.steps, self.update_every, self.eval_every, self.eval_episodes) < 1:
            raise ConfigError("steps, update_every, eval_every and eval_episodes must be >= 1")
        if self.eval_every % self.update_every or self.checkpoint_every % self.eval_every:
            raise ConfigError(
                "eval_every must be a multiple of update_every, and checkpoint_every a multiple "
                f"of eval_every (got {self.update_every}, {self.eval_every}, "
                f"{self.checkpoint_every})"
            )


@flax.struct.dataclass
class OnlineCarry:
    agent: sac.State
    buffer: Transitions
    key: jax.Array


def empty_buffer(capacity: int, spec: DatasetSpec) -> Transitions:
    """Zeroed device arrays, each its own buffer so the carry can be donated."""
    shapes = {
        "observations": (capacity, spec.obs_dim),
        "actions": (capacity, spec.action_dim),
        "rewards": (capacity,),
        "next_observations": (capacity, spec.obs_dim),
        "dones": (capacity,),
    }
    return Transitions(**{k: jax.device_put(np.zeros(s, np.float32)) for k, s in shapes.items()})


def make_learn(num_updates: int, batch_size: int):
    """Jitted: store a chunk of transitions at `position`, then `num_updates` SAC updates
    sampling the first `size` stored transitions (none when `size` < update_after)."""

    def learn(carry: OnlineCarry, chunk: Transitions, position, size, do_updates):
        buffer = jax.tree.map(
            lambda b, c: jax.lax.dynamic_update_slice_in_dim(b, c, position, axis=0),
            carry.buffer,
            chunk,
        )

        def body(state_key, _):
            state, key = state_key
            key, batch_key, update_key = jax.random.split(key, 3)
            idx = jax.random.randint(batch_key, (batch_size,), 0, size)
            batch = jax.tree.map(lambda x: x[idx], buffer)
            state, metrics = sac.update(state, batch, update_key)
            return (state, key), metrics

        def train(state_key):
            return jax.lax.scan(body, state_key, length=num_updates)

        def skip(state_key):
            shapes = jax.eval_shape(train, state_key)[1]
            return state_key, jax.tree.map(lambda m: jnp.full(m.shape, jnp.nan, m.dtype), shapes)

        (agent, key), metrics = jax.lax.cond(do_updates, train, skip, (carry.agent, carry.key))
        return OnlineCarry(agent=agent, buffer=buffer, key=key), metrics

    return jax.jit(learn, donate_argnums=0)


def save_snapshot(path: Path, actor_params) -> None:
    """The actor alone (mean and log-std heads), as flax msgpack: what datasets are made from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(flax.serialization.to_bytes(actor_params))
    tmp.replace(path)


def train_behavior(
    env_id: str,
    out_dir: str | Path,
    config: sac.Config | None = None,
    protocol: OnlineProtocol | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train SAC in `env_id`; returns the run folder with records, snapshots and checkpoints."""
    config = config or sac.Config()
    protocol = protocol or OnlineProtocol()
    protocol.validate()
    run_dir = Path(out_dir)
    env = gym.make(env_id)
    spec = DatasetSpec(
        int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    )
    run = BehaviorRun(
        env=env_id,
        seed=seed,
        config=dataclasses.asdict(config) | {"hidden_dims": list(config.hidden_dims)},
        protocol=dataclasses.asdict(protocol),
        spec=spec,
    )
    stored = read_behavior_run(run_dir)
    if stored is not None and stored != run:
        raise ConfigError(
            f"{run_dir} holds a behaviour run with other settings; use the same ones or a new --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_behavior_run(run_dir, run)

    init_key, train_key, explore_key = jax.random.split(jax.random.PRNGKey(seed), 3)
    carry = OnlineCarry(
        agent=sac.init(init_key, spec, config),
        buffer=empty_buffer(protocol.steps, spec),
        key=train_key,
    )
    checkpointer = Checkpointer(run_dir, keep=1)
    start = checkpointer.latest_step() or 0
    if start:
        carry, _ = checkpointer.restore(start, carry)
        truncate_records(run_dir, start)

    explore = jax.jit(
        lambda params, obs, step: sac.explore(
            params, carry.agent.actor.apply_fn, obs[None], jax.random.fold_in(explore_key, step)
        )[0]
    )
    act = jax.jit(sac.act)
    learn = make_learn(protocol.update_every, config.batch_size)
    eval_envs = gym.make_vec(env_id, num_envs=protocol.eval_episodes, vectorization_mode="sync")
    env.action_space.seed(seed + start)
    observation, _ = env.reset(seed=seed + start)
    chunk: dict[str, list] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "dones")
    }
    episode_return, episode_returns = 0.0, []
    bar = tqdm(
        total=protocol.steps,
        initial=start,
        disable=not progress,
        unit="step",
        desc=f"SAC {env_id}",
        dynamic_ncols=True,
    )
    began = time.perf_counter()
    try:
        for step in range(start, protocol.steps):
            if step < protocol.start_steps:
                action = env.action_space.sample()
            else:
                action = np.asarray(explore(carry.agent.actor.params, observation, step))
            next_observation, reward, terminated, truncated, _ = env.step(action)
            for name, value in zip(
                chunk,
                (observation, action, reward, next_observation, float(terminated)),
                strict=True,
            ):
                chunk[name].append(value)
            episode_return += float(reward)
            observation = next_observation
            if terminated or truncated:
                episode_returns.append(episode_return)
                episode_return = 0.0
                observation, _ = env.reset()
            done = step + 1
            if done % protocol.update_every == 0:
                arrays = Transitions(**{k: np.asarray(v, np.float32) for k, v in chunk.items()})
                chunk = {k: [] for k in chunk}
                carry, metrics = learn(
                    carry, arrays, done - protocol.update_every, done, done >= protocol.update_after
                )
                bar.update(protocol.update_every)
            if done % protocol.eval_every == 0:
                returns = run_episodes(
                    lambda obs, agent=carry.agent: np.asarray(act(agent, obs[0]))[None],
                    eval_envs,
                    [seed],
                    protocol.eval_episodes,
                )[0]
                save_snapshot(
                    run_dir / "snapshots" / f"step_{done:08d}.msgpack", carry.agent.actor.params
                )
                record = {
                    "step": done,
                    "eval_return": float(returns.mean()),
                    "eval_return_std": float(returns.std()),
                    "train_episode_return": float(np.mean(episode_returns))
                    if episode_returns
                    else None,
                    "train_episodes": len(episode_returns),
                    "losses": {k: float(np.mean(np.asarray(v))) for k, v in metrics.items()},
                    "wall_s": time.perf_counter() - began,
                }
                append_records(run_dir, [record])
                episode_returns = []
                bar.set_postfix({"eval": f"{record['eval_return']:.0f}"}, refresh=False)
                if done % protocol.checkpoint_every == 0 or done == protocol.steps:
                    checkpointer.save(done, carry, {"step": done})
    finally:
        bar.close()
        env.close()
        eval_envs.close()
        checkpointer.close()
    return run_dir
