"""The embedded dataset suite: `offrl/<env>/<level>-v0`, made on this machine from shipped policies.

Each dataset follows D4RL's locomotion protocol and is written as a Minari dataset (id = task
name) so other libraries can read it too:

- `random`: uniform random actions;
- `medium`, `expert`: the shipped medium / expert SAC policy. Actions are samples of the
  stochastic tanh-Gaussian policy, as D4RL's `collect_data.py` (`distr.sample()`) took them,
  not the deterministic mean the returns in the manifest were measured with;
- `medium-replay`: the shipped replay phases in order (SAC's uniform warm-up, then every
  snapshot before the medium one with SAC's sampled exploration actions), each given a share of
  the transitions proportional to the training steps it played; the policy switches mid-episode
  at phase boundaries, as it did in training;
- `medium-expert`: the `medium` and `expert` datasets of the same seed, one after the other
  (read back from the cache when they are there, made from the same policies, seed and size).

Sizes: 1M transitions each (D4RL's for random, medium and expert; D4RL's medium-replay was
whatever the replay buffer held, here the same training-time proportions fill 1M), medium-expert
2M. Rollouts step `num_envs` gymnasium envs in lock-step (split over worker processes, see
offrl.envs.workers) with one jitted batched policy call per vector step; every env and every
policy sample is seeded from (seed, level), so a seed gives the same bytes whatever the number of
workers, and the checksum of the transitions the loader returns is stored in the dataset's
metadata and verified on load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.behavior import manifest, sac
from offrl.data import minari_io
from offrl.data.transitions import checksum, from_numpy
from offrl.envs import make_env
from offrl.envs.workers import BlockVectorEnv
from offrl.errors import ConfigError, DatasetError, UnknownTaskError
from offrl.nets import TanhGaussianActor

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")
TRANSITIONS = 1_000_000
"""D4RL's size for one level (medium-expert holds two)."""
NUM_ENVS = 32
"""Envs stepped together: enough to amortise the policy call, few partial episodes at the end."""
WORKERS = min(os.cpu_count() or 1, NUM_ENVS)
"""Processes stepping the envs (MuJoCo's physics is the cost); the data does not depend on it."""
RANDOM_CHUNK = 64
"""Vector steps of uniform random actions sent to the env workers at once (offrl.envs.workers)."""
STREAMS = {"random": 0, "medium": 1, "expert": 2, "medium-replay": 3}
"""Each rollout's seeds come from (seed, stream): levels never share initial states."""
DEFAULT_LOCOMOTION = ("hopper", "halfcheetah", "walker2d")
"""Always listed; other envs (ant) once their policies are shipped."""

Advance = Callable[[int], None]  # called with the transitions just collected
MakeEpisodes = Callable[[int, int, Advance, int], list[EpisodeBuffer]]
"""(seed, transitions, advance, workers) -> the episodes of a dataset."""


@dataclass(frozen=True)
class Segment:
    """A stretch of a rollout played by one behaviour."""

    params: manifest.Params | None  # actor parameters; None = uniform random actions
    weight: int  # training steps it stands for: its share of the rollout


@dataclass(frozen=True)
class Recipe:
    """How one embedded dataset is made; what the registry and `offrl data make` need."""

    dataset_id: str  # "offrl/hopper/medium-v0": the task name and the Minari id
    env_spec: EnvSpec  # the evaluation env
    collection_env: Callable[[], gym.Env]  # the env played: its spaces and spec are recorded
    transitions: int  # default size
    reference_scores: Callable[[], tuple[float, float] | None]  # read or measured when made
    episodes: MakeEpisodes
    algorithm: str  # Minari metadata `algorithm_name`
    policies: Callable[[], list[str]] = list  # sha256 of each shipped policy file it plays


STANDARD_SEED = 0  # the seed of every standard (benchmarked) embedded dataset


def dataset_id(env: str, level: str) -> str:
    return f"offrl/{env}/{level}-v0"


# --- rollouts --------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=1)
def sample_actions(
    params: manifest.Params, apply_fn, observations, key: jax.Array, step
) -> jax.Array:
    """SAC's stochastic policy for a batch: the exploration noise it trained with."""
    return sac.explore(params, apply_fn, observations, jax.random.fold_in(key, step))


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
    low = jnp.broadcast_to(jnp.asarray(space.low), (num_envs, *space.shape))
    high = jnp.broadcast_to(jnp.asarray(space.high), (num_envs, *space.shape))
    columns = {
        "observations": np.empty((steps, num_envs, *obs_space.shape), obs_space.dtype),
        "next_observations": np.empty((steps, num_envs, *obs_space.shape), obs_space.dtype),
        "actions": np.empty((steps, num_envs, *space.shape), space.dtype),
        "rewards": np.empty((steps, num_envs), np.float64),
        "terminations": np.empty((steps, num_envs), bool),
        "truncations": np.empty((steps, num_envs), bool),
    }
    dtype = space.dtype

    def record(at: slice, block: slice, seen, actions, stepped: tuple[np.ndarray, ...]) -> None:
        _, final, rewards, terminations, truncations = stepped
        row = (seen, final, actions, rewards, terminations, truncations)
        for name, value in zip(columns, row, strict=True):
            columns[name][at, block] = value

    def played(step: int, count: int) -> int:
        return count * num_envs - (num_envs - last if step + count == steps else 0)

    def play_uniform(envs: BlockVectorEnv, observations, step: int, end: int):
        """Uniform random steps, many per round trip (they need no observation)."""
        while step < end:
            count = min(RANDOM_CHUNK, end - step)
            actions = np.asarray(uniform_actions(key, step, low, high, RANDOM_CHUNK))[:count]
            stepped = envs.step_many(actions.astype(dtype, copy=False))
            # Step t's observations are those the envs returned at step t - 1.
            seen = np.concatenate([observations[None], stepped[0][:-1]])
            record(slice(step, step + count), slice(None), seen, actions, stepped)
            observations = stepped[0][-1].copy()
            advance(played(step, count))
            step += count
        return observations

    def play_policy(envs: BlockVectorEnv, params, observations, step: int, end: int):
        """Policy steps, each block sent its next actions as soon as it is back, while the others
        step. A row's action depends only on its own observation (bitwise: rows never mix in the
        MLP), so a block's rows are those one call on every env's next observation gives."""

        def policy(at: int) -> np.ndarray:
            batch = np.asarray(observations, np.float32)  # jit takes numpy without an eager op
            actions = sample_actions(params, actor.apply, batch, key, at)
            return np.asarray(actions).astype(dtype, copy=False)

        sent = policy(step)
        for block, rows in enumerate(envs.slices):
            envs.submit(block, sent[None, rows])
        for now in range(step, end):
            upcoming, this_step = np.empty_like(sent), slice(now, now + 1)
            for block, rows in enumerate(envs.slices):
                stepped = envs.collect(block)
                record(this_step, rows, observations[None, rows], sent[None, rows], stepped)
                observations[rows] = stepped[0][-1]
                if now + 1 < end:
                    upcoming[rows] = policy(now + 1)[rows]
                    envs.submit(block, upcoming[None, rows])
            sent = upcoming
            advance(played(now, 1))
        return observations

    envs = BlockVectorEnv(env_spec, num_envs, workers)
    try:
        observations = envs.reset(env_seeds)
        step = 0
        for segment, end in zip(segments, ends.tolist(), strict=True):
            if step < end and segment.params is None:
                observations = play_uniform(envs, observations, step, end)
            elif step < end:
                observations = play_policy(envs, segment.params, observations, step, end)
            step = end
    finally:
        envs.close()
    return split_episodes(columns, lengths, env_seeds)


# --- the locomotion levels -------------------------------------------------------------------


def locomotion_episodes(env: str, level: str, folder: Path | None) -> MakeEpisodes:
    """The episode maker of one level; shipped policies are loaded (and verified) when it runs."""

    def make(seed: int, transitions: int, advance: Advance, workers: int) -> list[EpisodeBuffer]:
        entry = manifest.env_entry(env, folder)
        spec = gym.spec(entry.env_id)
        actor = manifest.actor_module(entry)

        def play(stream: str, segments: list[Segment], size: int) -> list[EpisodeBuffer]:
            stream_id = STREAMS[stream]
            return rollout(
                spec, actor, segments, size, seed, stream_id, workers=workers, advance=advance
            )

        def policy(name: str) -> list[Segment]:
            return [Segment(manifest.load_actor(entry, entry.level_policy(name), folder), 1)]

        def reused_or_played(name: str, size: int) -> list[EpisodeBuffer]:
            policies = [entry.level_policy(name).sha256]
            cached = cached_episodes(dataset_id(env, name), seed, size, policies)
            if cached:
                advance(size)
                return cached
            return play(name, policy(name), size)

        if level == "random":
            return play("random", [Segment(None, 1)], transitions)
        if level in ("medium", "expert"):
            return play(level, policy(level), transitions)
        if level == "medium-expert":
            half = transitions // 2
            return reused_or_played("medium", half) + reused_or_played("expert", transitions - half)
        phases = [
            Segment(None, p.steps)
            if isinstance(p, manifest.RandomPhase)
            else Segment(manifest.load_actor(entry, p, folder), p.steps)
            for p in entry.replay
        ]
        return play("medium-replay", phases, transitions)

    return make


def cached_episodes(
    name: str, seed: int, transitions: int, policies: list[str]
) -> list[EpisodeBuffer]:
    """The episodes of dataset `name` if the cache holds it made from these policy files, seed
    and size, with its checksum intact (the same bytes a rollout would give); else none."""
    try:
        metadata = minari_io.read_minari_info(name).metadata
    except DatasetError:
        return []
    made_the_same = (
        metadata.get("offrl_seed") == seed
        and metadata.get("total_steps") == transitions
        and metadata.get("offrl_policies") == policies
    )
    if not made_the_same:
        return []
    episodes = minari_io.read_episode_buffers(name)
    return episodes if episodes_checksum(episodes) == metadata[minari_io.CHECKSUM_KEY] else []


def made_from_other_policies(name: str, folder: Path | None = None) -> bool:
    """Whether cached dataset `name` was played by other behaviour policy files than the shipped
    ones (the policies were shipped again since), or by unrecorded ones (an older offrl made it).
    Without shipped policies to compare with, the dataset is taken as it is."""
    try:
        policies = find_recipe(name, folder).policies()
    except DatasetError:
        return False
    metadata = minari_io.read_minari_info(name).metadata
    return bool(policies) and metadata.get("offrl_policies") != policies


def nonstandard(name: str, folder: Path | None = None) -> str | None:
    """How cached dataset `name` differs from its standard recipe (the recipe's size, seed 0),
    e.g. a `--steps 5000` preview; None when it is the standard dataset."""
    recipe = find_recipe(name, folder)
    metadata = minari_io.read_minari_info(name).metadata
    size, seed = metadata.get("total_steps"), metadata.get("offrl_seed")
    if size == recipe.transitions and seed == STANDARD_SEED:
        return None
    return (
        f"{size:,} transitions made with seed {seed}, not the standard {recipe.transitions:,} "
        f"with seed {STANDARD_SEED}"
    )


def stale_hint(name: str) -> str:
    return (
        f"Embedded dataset {name} was made from other behaviour policies than the shipped ones "
        "(offrl/behavior/policies changed since, or an older offrl made it without recording "
        f"them); make it again: `offrl data make {name} --overwrite`."
    )


def locomotion_policies(env: str, level: str, folder: Path | None) -> list[str]:
    """sha256 of the shipped policy files a level plays, in order."""
    entry = manifest.env_entry(env, folder)
    if level == "random":
        return []
    if level == "medium-expert":
        return [entry.medium.sha256, entry.expert.sha256]
    if level in ("medium", "expert"):
        return [entry.level_policy(level).sha256]
    return [phase.sha256 for phase in entry.replay if isinstance(phase, manifest.SnapshotPhase)]


def locomotion_reference_scores(env: str, folder: Path | None) -> tuple[float, float] | None:
    """(random policy's, expert's) mean return over 100 episodes, from the manifest."""
    entry = manifest.read_policy_manifest(folder).envs.get(env)
    if entry is None:
        return None
    return entry.random.return_mean, entry.expert.return_mean


def locomotion_recipes(folder: Path | None = None) -> dict[str, Recipe]:
    """Every level of the default envs and of any other env with shipped policies."""
    shipped = manifest.read_policy_manifest(folder).envs
    envs = dict.fromkeys([*DEFAULT_LOCOMOTION, *sorted(shipped)])
    recipes = {}
    for env in envs:
        env_id = shipped[env].env_id if env in shipped else manifest.LOCOMOTION_ENVS[env]
        for level in LEVELS:
            name = dataset_id(env, level)
            recipes[name] = Recipe(
                dataset_id=name,
                env_spec=gym.spec(env_id),
                collection_env=functools.partial(gym.make, env_id),
                transitions=2 * TRANSITIONS if level == "medium-expert" else TRANSITIONS,
                reference_scores=functools.partial(locomotion_reference_scores, env, folder),
                episodes=locomotion_episodes(env, level, folder),
                algorithm=f"offrl-generate/{level}",
                policies=functools.partial(locomotion_policies, env, level, folder),
            )
    return recipes


def pointmaze_recipes() -> dict[str, Recipe]:
    """`offrl/pointmaze/{umaze,medium,large}[-dense]-v0`: D4RL's maze2d protocol, a noisy planner
    in a continuing maze (see offrl.data.maze), evaluated with D4RL's fixed goal."""
    # gymnasium-robotics (imported only once mazes are asked about) prints a notice about its
    # Adroit envs on import: keep it out of offrl's own output and error messages.
    with contextlib.redirect_stderr(io.StringIO()):
        from offrl.data import maze
        from offrl.envs.maze import POINTMAZE_MAZES, pointmaze_eval_env_spec

    def episodes(name: str, dense: bool) -> MakeEpisodes:
        return lambda seed, size, advance, workers: maze.pointmaze_episodes(
            name, dense, size, seed, advance
        )

    recipes = {}
    for name in POINTMAZE_MAZES:
        for dense in (False, True):
            dataset = dataset_id("pointmaze", f"{name}-dense" if dense else name)
            recipes[dataset] = Recipe(
                dataset_id=dataset,
                env_spec=pointmaze_eval_env_spec(name, dense),
                collection_env=functools.partial(maze.pointmaze_dataset_env, name, dense),
                transitions=maze.POINTMAZE_STEPS[name],
                reference_scores=functools.partial(maze.pointmaze_reference_scores, name, dense),
                episodes=episodes(name, dense),
                algorithm="offrl-generate/pointmaze-planner",
            )
    return recipes


def recipes(folder: Path | None = None) -> dict[str, Recipe]:
    """Every embedded dataset by id."""
    return locomotion_recipes(folder) | pointmaze_recipes()


def find_recipe(name: str, folder: Path | None = None) -> Recipe:
    """The recipe of `offrl/<env>/<level>-v0` (the `offrl/` prefix may be left out)."""
    full = name if name.startswith("offrl/") else f"offrl/{name}"
    known = recipes(folder)
    if full not in known:
        raise UnknownTaskError(
            f"'{name}' is not an embedded dataset. Known: {', '.join(known)}. "
            "`offrl data list` shows every task."
        )
    return known[full]


# --- making one --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MakeInfo:
    """Summary of one made dataset."""

    dataset_id: str
    path: Path
    seed: int
    transitions: int
    episodes: int
    episode_returns: np.ndarray
    checksum: str
    seconds: float


def episodes_checksum(episodes: list[EpisodeBuffer]) -> str:
    """`transitions.checksum` of exactly what the loader will return for these episodes."""
    numbered = [dataclasses.replace(episode, id=i) for i, episode in enumerate(episodes)]
    return checksum(from_numpy(minari_io.flatten_episodes(numbered).arrays))


def make_command(recipe: Recipe, seed: int, size: int) -> str:
    """The `offrl data make` command that makes these exact bytes again."""
    steps = "" if size == recipe.transitions else f" --steps {size}"
    return f"offrl data make {recipe.dataset_id} --seed {seed}{steps}"


def make_dataset(
    name: str,
    seed: int = 0,
    transitions: int | None = None,
    overwrite: bool = False,
    advance: Advance = lambda n: None,
    workers: int = 1,
    folder: Path | None = None,
) -> MakeInfo:
    """Roll out, checksum and write one embedded dataset to the local Minari cache (atomic).

    `transitions` overrides the size (tests, previews); the same (seed, size) gives the same
    checksum, whatever the number of env `workers` (processes started with multiprocessing's
    spawn: a calling script needs the `if __name__ == "__main__":` guard).
    """
    recipe = find_recipe(name, folder)
    minari_io.check_writable(recipe.dataset_id, overwrite)
    size = recipe.transitions if transitions is None else transitions
    if size < 1:
        raise ConfigError(f"A dataset needs at least one transition, got {size}.")
    started = time.perf_counter()
    episodes = recipe.episodes(seed, size, advance, workers)
    digest = episodes_checksum(episodes)
    env = recipe.collection_env()
    try:
        path = minari_io.write_minari_dataset(
            recipe.dataset_id,
            episodes,
            env,
            eval_env_spec=recipe.env_spec,
            algorithm_name=recipe.algorithm,
            description=(
                f"offrl embedded dataset {recipe.dataset_id}: {size} transitions, seed {seed}. "
                f"Made by `{make_command(recipe, seed, size)}`."
            ),
            ref_scores=recipe.reference_scores(),
            extra_metadata={
                minari_io.CHECKSUM_KEY: digest,
                "offrl_seed": seed,
                "offrl_policies": recipe.policies(),
            },
            overwrite=overwrite,
        )
    finally:
        env.close()
    return MakeInfo(
        dataset_id=recipe.dataset_id,
        path=path,
        seed=seed,
        transitions=size,
        episodes=len(episodes),
        episode_returns=np.asarray([float(np.sum(e.rewards)) for e in episodes]),
        checksum=digest,
        seconds=time.perf_counter() - started,
    )
