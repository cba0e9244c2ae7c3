"""The bench profiles: which agents, tasks and seeds, and the protocol they are trained and scored
under. Each agent trains with its official per-task config (`offrl.agent.official_config`: the
Config defaults with the agent's `OFFICIAL` values for the task's environment family), as
`offrl train` and `fit` do by default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from offrl.agent import official_config, resolve_agent
from offrl.errors import ConfigError

FINAL_SCORE_RULE = "mean of the last 10 evaluations (TD3+BC's paper); last and best kept too"


def config_for(agent: str, task: str) -> Any:
    """The agent's official Config for a task (its environment's values, else the defaults)."""
    return official_config(resolve_agent(agent), task)


@dataclasses.dataclass(frozen=True)
class Profile:
    """A bench profile: what is run and the protocol every run follows."""

    name: str
    agents: tuple[str, ...]
    tasks: tuple[str, ...] | None
    """None: every task whose data is on disk."""
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    eval_episodes: int
    note: str
    """How the profile differs from the papers' protocol, printed under every table."""
    seed_by_seed: tuple[str, ...] = ()
    """Agents whose seeds train as separate runs, so that each run fits in a work session
    (a run killed before its end starts again from its last checkpoint, if the folder survives)."""


PAPER_STEPS, PAPER_EVAL_EVERY, PAPER_EVAL_EPISODES = 1_000_000, 5_000, 10
ALL_AGENTS = ("td3bc", "prdc", "a2pr", "ggdtd")

PROFILES = {
    "default": Profile(
        name="default",
        agents=ALL_AGENTS,
        tasks=(
            "offrl/hopper/medium-v0",
            "offrl/hopper/medium-replay-v0",
            "offrl/hopper/medium-expert-v0",
            "offrl/pointmaze/umaze-v0",
        ),
        seeds=(0, 1, 2),
        steps=2_000,
        eval_every=500,
        eval_episodes=10,
        note=(
            "REDUCED for a 2-core laptop (about 95 min, datasets included): 2,000 gradient steps "
            "instead of 1,000,000, evaluated every 500 steps (10 episodes), 3 seeds; scores are "
            "far below converged values and are not comparable with the papers'"
        ),
    ),
    "full": Profile(
        name="full",
        agents=ALL_AGENTS,
        tasks=None,
        seeds=(0, 1, 2, 3, 4),
        steps=PAPER_STEPS,
        eval_every=PAPER_EVAL_EVERY,
        eval_episodes=PAPER_EVAL_EPISODES,
        note=(
            "the papers' protocol: 1M gradient steps, evaluated every 5,000 (10 episodes), on "
            "every task whose data is on disk (AntMaze included once made)"
        ),
    ),
    "repro": Profile(
        name="repro",
        # Cheapest first: an interrupted bench has finished the most runs per hour.
        agents=("td3bc", "prdc", "ggdtd", "a2pr"),
        tasks=(
            "offrl/hopper/medium-v0",
            "offrl/hopper/medium-replay-v0",
            "offrl/halfcheetah/medium-v0",
            "offrl/walker2d/medium-v0",
        ),
        seeds=(0, 1, 2),
        steps=100_000,
        eval_every=PAPER_EVAL_EVERY,
        eval_episodes=PAPER_EVAL_EPISODES,
        seed_by_seed=("ggdtd", "a2pr"),
        note=(
            "LONG HORIZON on the generated datasets: 100,000 gradient steps (a tenth of the "
            "papers'), evaluated every 5,000 (10 episodes), 3 seeds, final = mean of the last 10 "
            "evaluations. About 37 hours on a 2-core CPU beside another job, the sum of the "
            "published board's wall times (docs/benchmark.md): TD3+BC 3.3 h (3 seeds "
            "vmapped per task), GGD-TD 15 h (2.5-2.7 h per hopper pair seed, 1.0-1.6 h per other "
            "run), A2PR 12.5 h (0.8-1.7 h per run, one seed), PRDC 5.8 h "
            "(0.9-1.9 h per task, 3 seeds vmapped; halfcheetah 30-41 min per seed alone: its "
            "candidate lists certify 54-86% of the queries after the first 10,000 steps); "
            "evaluation runs beside training"
        ),
    ),
    "antmaze": Profile(
        name="antmaze",
        agents=("td3bc", "prdc"),
        tasks=("offrl/antmaze/umaze-v0",),
        seeds=(0, 1, 2),
        steps=50_000,
        eval_every=PAPER_EVAL_EVERY,
        eval_episodes=PAPER_EVAL_EPISODES,
        note=(
            "REDUCED AntMaze: umaze only, TD3+BC and PRDC, 50,000 gradient steps (a 20th of "
            "the papers'), evaluated every 5,000 (10 episodes), 3 seeds; the normalised score is "
            "the success rate x 100. About 40 min on an idle 2-core machine by the rates "
            "measured elsewhere (TD3+BC 131, PRDC about 100 upd/s per seed), the dataset "
            "included; 1 h 43 min on 2026-12-05 beside other jobs. The full profile runs every "
            "AntMaze dataset on disk"
        ),
    ),
    "smoke": Profile(
        name="smoke",
        agents=ALL_AGENTS,
        tasks=("offrl/pointmaze/umaze-v0",),
        seeds=(0, 1),
        steps=200,
        eval_every=100,
        eval_episodes=2,
        note="SMOKE test of the pipeline only: 200 steps, 2 episodes; the scores mean nothing",
    ),
}


def profile_named(name: str) -> Profile:
    """The profile of that name, or a ConfigError listing them."""
    if name not in PROFILES:
        raise ConfigError(f"Unknown bench profile '{name}'. Profiles: {', '.join(PROFILES)}.")
    return PROFILES[name]


def select(
    profile: Profile,
    agents: tuple[str, ...] | None,
    tasks: tuple[str, ...] | None,
    seeds: tuple[int, ...] | None = None,
) -> Profile:
    """The profile cut to some of its agents (trained in the order given) and tasks, with other
    seeds where given; None keeps them all. An agent or task the profile does not hold is
    refused, so a typo cannot train nothing; seeds may lie outside the profile's (extra seeds)."""
    if agents is not None:
        unknown = [agent for agent in agents if agent not in profile.agents]
        if unknown or not agents:
            raise ConfigError(
                f"--agents {' '.join(agents) or '(none)'}: profile {profile.name} trains "
                f"{', '.join(profile.agents)}; pick among those"
            )
        profile = dataclasses.replace(profile, agents=tuple(dict.fromkeys(agents)))
    if tasks is not None:
        known = profile.tasks or ()
        unknown = [task for task in tasks if task not in known]
        if profile.tasks is None or unknown or not tasks:
            listed = ", ".join(known) if profile.tasks else "every task on disk (no fixed list)"
            raise ConfigError(
                f"--tasks {' '.join(tasks) or '(none)'}: profile {profile.name}'s tasks are "
                f"{listed}; pick among those"
            )
        profile = dataclasses.replace(profile, tasks=tuple(dict.fromkeys(tasks)))
    if seeds is not None:
        if not seeds or min(seeds) < 0:
            raise ConfigError(
                f"--seeds {' '.join(map(str, seeds)) or '(none)'}: give one or more seeds >= 0"
            )
        profile = dataclasses.replace(profile, seeds=tuple(dict.fromkeys(seeds)))
    return profile
