"""PRDC per-task hyper-parameters: the official README (ALGORITHMS.md 3.3).

The README gives one line per environment family, applied here to all of its datasets: whether the
paper tuned per dataset is unverified. maze2d/pointmaze has no official line and uses the Config
defaults (alpha 2.5, beta 2). The antmaze reward transform r' = 10000 r - 1 is the README's command.
"""

from agents import prdc

OFFICIAL: dict[str, dict[str, float]] = {
    "halfcheetah": {"alpha": 40.0, "beta": 2.0},
    "hopper": {"alpha": 2.5, "beta": 2.0},
    "walker2d": {"alpha": 2.5, "beta": 2.0},
    "antmaze": {"alpha": 7.5, "beta": 7.5, "reward_scale": 10000.0, "reward_shift": -1.0},
}


def config_for(env: str) -> prdc.Config:
    """The official Config for an environment name (e.g. "hopper"); defaults where none exist."""
    return prdc.Config(**OFFICIAL.get(env, {}))
