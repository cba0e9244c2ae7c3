"""AntMaze navigation datasets generated as D4RL's antmaze ones.

D4RL (`scripts/generation/generate_ant_maze_datasets.py`) drove its ant with a goal-reaching SAC
policy steered by a planner, with N(0, 0.2²) noise on every action, in 1,000-step episodes ended by
the time limit; rewards were relabelled against the evaluation goal, and a step's terminal flag is
its reward (D4RL's antmaze-v2 convention: runs of terminal 1s while the ant stays at the goal). The
collection env, its goals and planner are offrl.envs.antmaze's AntMazeCollectEnv; the policy is
the shipped navigator (offrl.behavior.navigator), and the rollout is offrl.data.rollouts', so
datasets are deterministic per seed whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
from minari.data_collector.episode_buffer import EpisodeBuffer

from offrl.behavior import manifest
from offrl.behavior.navigator import FAMILY, navigate
from offrl.data.rollouts import Advance, Segment, rollout
from offrl.envs import antmaze_collect_env_id
from offrl.envs.ant import STATE_DIM

TRANSITIONS = 1_000_000  # D4RL's size of every antmaze dataset
DATASETS = {
    "umaze": ("umaze", "fixed"),
    "umaze-diverse": ("umaze", "diverse"),
    "medium-play": ("medium", "play"),
    "medium-diverse": ("medium", "diverse"),
    "large-play": ("large", "play"),
    "large-diverse": ("large", "diverse"),
}
"""Dataset name -> (maze, collection goals)."""
STREAM = 5  # rollout seeds come from (seed, STREAM): apart from the locomotion levels' streams


def as_dataset_episode(episode: EpisodeBuffer) -> EpisodeBuffer:
    """A collected episode as stored: the ant's state only, terminal where the reward is 1."""
    observations = np.asarray(episode.observations)[:, :STATE_DIM]
    return dataclasses.replace(
        episode,
        observations=np.ascontiguousarray(observations),
        terminations=np.asarray(episode.rewards) == 1.0,
    )


def antmaze_episodes(
    dataset: str,
    seed: int,
    transitions: int,
    advance: Advance = lambda n: None,
    workers: int = 1,
    folder: Path | None = None,
) -> list[EpisodeBuffer]:
    """Exactly `transitions` steps of the noisy navigator in the collection env of `dataset`."""
    maze, goals = DATASETS[dataset]
    entry = manifest.navigator_entry(FAMILY, folder)
    params = manifest.load_actor(entry, entry, folder)
    episodes = rollout(
        gym.spec(antmaze_collect_env_id(maze, goals)),
        manifest.actor_module(entry),
        [Segment(params, 1)],
        transitions,
        seed,
        STREAM,
        workers=workers,
        advance=advance,
        explore=navigate,
    )
    return [as_dataset_episode(episode) for episode in episodes]
