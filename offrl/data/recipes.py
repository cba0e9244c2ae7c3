"""How each embedded dataset `offrl/<env>/<level>-v0` is made: its recipe (evaluation env, size,
reference scores, episode maker, the shipped policy files it plays), for the locomotion levels,
the PointMaze mazes and the AntMaze datasets.

The locomotion levels follow D4RL's protocol (see offrl.data.generate); `medium-expert` reads its
halves back from the cache when they were made from the same policy files, seed and size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.behavior import manifest, navigator
from offrl.data import antmaze_datasets, pointmaze_datasets
from offrl.data.minari_checks import CHECKSUM_KEY
from offrl.data.minari_read import flatten_episodes, read_episode_buffers, read_minari_info
from offrl.data.rollouts import Advance, Segment, rollout
from offrl.data.transitions import checksum, from_numpy
from offrl.envs import ANTMAZE_ENV_IDS
from offrl.envs.pointmaze import POINTMAZE_MAZES, pointmaze_eval_env_spec
from offrl.errors import DatasetError, UnknownTaskError

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert")
TRANSITIONS = 1_000_000
"""D4RL's size for one level (medium-expert holds two)."""
STREAMS = {"random": 0, "medium": 1, "expert": 2, "medium-replay": 3}
"""Each rollout's seeds come from (seed, stream): levels never share initial states."""
DEFAULT_LOCOMOTION = ("hopper", "halfcheetah", "walker2d")
"""Always listed; other envs (ant) once their policies are shipped."""
STANDARD_SEED = 0  # the seed of every standard (benchmarked) embedded dataset

MakeEpisodes = Callable[[int, int, Advance, int], list[EpisodeBuffer]]
"""(seed, transitions, advance, workers) -> the episodes of a dataset."""


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
    statistics: Callable[[list[EpisodeBuffer]], dict[str, float]] = lambda episodes: {}
    """Figures about the made episodes that `offrl data info` shows (Minari metadata)."""
    rollout_version: int | None = None  # ROLLOUT_VERSION where offrl.data.rollouts plays it


ROLLOUT_VERSION_KEY = "offrl_rollout_version"
ROLLOUT_VERSION = 2
"""How offrl.data.rollouts computes the behaviour's actions: 2, float64 numpy, the same bytes on
every CPU (offrl.behavior.portable); 1 (not recorded), XLA, whose bytes depended on the CPU."""


def dataset_id(env: str, level: str) -> str:
    return f"offrl/{env}/{level}-v0"


def episodes_checksum(episodes: list[EpisodeBuffer]) -> str:
    """`transitions.checksum` of exactly what the loader will return for these episodes."""
    numbered = [dataclasses.replace(episode, id=i) for i, episode in enumerate(episodes)]
    return checksum(from_numpy(flatten_episodes(numbered).arrays))


def cached_episodes(
    name: str, seed: int, transitions: int, policies: list[str]
) -> list[EpisodeBuffer]:
    """The episodes of dataset `name` if the cache holds it made from these policy files, seed,
    size and rollout, with its checksum intact (the same bytes a rollout would give); else none."""
    try:
        metadata = read_minari_info(name).metadata
    except DatasetError:
        return []
    made_the_same = (
        metadata.get("offrl_seed") == seed
        and metadata.get("total_steps") == transitions
        and metadata.get("offrl_policies") == policies
        and metadata.get(ROLLOUT_VERSION_KEY) == ROLLOUT_VERSION
    )
    if not made_the_same:
        return []
    episodes = read_episode_buffers(name)
    return episodes if episodes_checksum(episodes) == metadata[CHECKSUM_KEY] else []


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
                rollout_version=ROLLOUT_VERSION,
            )
    return recipes


# --- the mazes and every recipe --------------------------------------------------------------


def pointmaze_recipes() -> dict[str, Recipe]:
    """`offrl/pointmaze/{umaze,medium,large}[-dense]-v0`: D4RL's maze2d protocol, a noisy planner
    in a continuing maze (see offrl.data.pointmaze_datasets), evaluated with D4RL's fixed goal."""

    def episodes(name: str, dense: bool) -> MakeEpisodes:
        return lambda seed, size, advance, workers: pointmaze_datasets.pointmaze_episodes(
            name, dense, size, seed, advance
        )

    recipes = {}
    for name in POINTMAZE_MAZES:
        for dense in (False, True):
            dataset = dataset_id("pointmaze", f"{name}-dense" if dense else name)
            recipes[dataset] = Recipe(
                dataset_id=dataset,
                env_spec=pointmaze_eval_env_spec(name, dense),
                collection_env=functools.partial(
                    pointmaze_datasets.pointmaze_dataset_env, name, dense
                ),
                transitions=pointmaze_datasets.POINTMAZE_STEPS[name],
                reference_scores=functools.partial(
                    pointmaze_datasets.pointmaze_reference_scores, name, dense
                ),
                episodes=episodes(name, dense),
                algorithm="offrl-generate/pointmaze-planner",
            )
    return recipes


def antmaze_statistics(maze: str, folder: Path | None, episodes: list[EpisodeBuffer]) -> dict:
    """The reward-1 steps of the made episodes and the navigator's collector success rate."""
    success = manifest.navigator_entry(navigator.FAMILY, folder).success[maze]
    rewarded = sum(int(np.sum(np.asarray(episode.rewards) == 1.0)) for episode in episodes)
    return {"offrl_reward_one_steps": rewarded, "offrl_collector_success": success}


def antmaze_recipes(folder: Path | None = None) -> dict[str, Recipe]:
    """`offrl/antmaze/{umaze,umaze-diverse,medium-play,...}-v0`: D4RL's antmaze protocol, the
    shipped navigator steered by a planner (see offrl.data.antmaze_datasets), evaluated with
    D4RL's goals; the normalised score is the success rate x 100."""

    def episodes(name: str) -> MakeEpisodes:
        return lambda seed, size, advance, workers: antmaze_datasets.antmaze_episodes(
            name, seed, size, advance, workers, folder
        )

    def policies() -> list[str]:
        return [manifest.navigator_entry(navigator.FAMILY, folder).sha256]

    recipes = {}
    for name, (maze_name, _) in antmaze_datasets.DATASETS.items():
        dataset = dataset_id("antmaze", name)
        eval_env = ANTMAZE_ENV_IDS[maze_name]
        recipes[dataset] = Recipe(
            dataset_id=dataset,
            env_spec=gym.spec(eval_env),
            collection_env=functools.partial(gym.make, eval_env),
            transitions=antmaze_datasets.TRANSITIONS,
            reference_scores=lambda: (0.0, 1.0),  # D4RL's: success rate x 100
            episodes=episodes(name),
            algorithm="offrl-generate/antmaze-navigator",
            policies=policies,
            statistics=functools.partial(antmaze_statistics, maze_name, folder),
            rollout_version=ROLLOUT_VERSION,
        )
    return recipes


def recipes(folder: Path | None = None) -> dict[str, Recipe]:
    """Every embedded dataset by id."""
    return locomotion_recipes(folder) | pointmaze_recipes() | antmaze_recipes(folder)


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
