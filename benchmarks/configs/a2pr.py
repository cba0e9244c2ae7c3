"""A2PR per-task hyper-parameters: the official README's examples (docs/algorithms.md §4.3).

Only halfcheetah, hopper and walker2d (given for their -medium-v2 datasets) have official values;
the repo and the readable sources give none for random / medium-replay / medium-expert / expert,
antmaze or maze2d, so those use the Config defaults (alpha 2.5, vae_weight 1.0, mask 0.5,
discount 0.99). The environment's values are applied to all of its datasets.
"""

from agents import a2pr

OFFICIAL: dict[str, dict[str, float]] = {
    "halfcheetah": {"alpha": 40.0, "vae_weight": 1.0, "mask": 1.0, "discount": 0.99},
    "hopper": {"alpha": 2.5, "vae_weight": 1.0, "mask": 0.4, "discount": 0.995},
    "walker2d": {"alpha": 2.5, "vae_weight": 1.5, "mask": 1.0, "discount": 0.99},
}


def config_for(env: str) -> a2pr.Config:
    """The official Config for an environment name (e.g. "hopper"); defaults where none exist."""
    return a2pr.Config(**OFFICIAL.get(env, {}))
