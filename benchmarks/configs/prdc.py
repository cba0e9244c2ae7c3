"""PRDC per-task hyper-parameters, as the official code `LAMDA-RL/PRDC` would run each task.

Where each value comes from:
- halfcheetah (alpha 40, beta 2), hopper and walker2d (alpha 2.5, beta 2), antmaze (alpha 7.5,
  beta 7.5, reward r' = 10000 r - 1 via `--scale=10000 --shift=-1`): the README's example
  commands, one per environment family ("For hopper & walker2d" is one line), applied here to
  all of the family's datasets; whether the paper tuned per dataset is unverified.
- every other task (maze2d, pointmaze, ant): no README line, so the official run takes the
  command-line defaults of `utils/config.py`, alpha 2.5 and beta 1.0, which are prdc.Config's.
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
