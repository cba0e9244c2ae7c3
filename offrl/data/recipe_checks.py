"""How a cached embedded dataset compares with its recipe: played by other policy files than the
shipped ones (stale), or not the standard size and seed (a preview)."""

from __future__ import annotations

from pathlib import Path

from offrl.data.minari_read import read_minari_info
from offrl.data.recipes import ROLLOUT_VERSION_KEY, STANDARD_SEED, Recipe, find_recipe
from offrl.errors import DatasetError


def version_metadata(recipe: Recipe) -> dict[str, int]:
    """The rollout version a dataset records, where offrl.data.rollouts plays it."""
    version = recipe.rollout_version
    return {} if version is None else {ROLLOUT_VERSION_KEY: version}


def is_stale(name: str, folder: Path | None = None) -> bool:
    """Whether cached dataset `name` is stale: played by other behaviour policy files than the
    shipped ones (the policies were shipped again since), by unrecorded ones, or by an older
    rollout (an older offrl made it). Without a recipe to compare with, it is taken as it is."""
    try:
        recipe = find_recipe(name, folder)
        policies = recipe.policies()
    except DatasetError:
        return False
    metadata = read_minari_info(name).metadata
    other_policies = bool(policies) and metadata.get("offrl_policies") != policies
    older_rollout = any(metadata.get(k) != v for k, v in version_metadata(recipe).items())
    return other_policies or older_rollout


def nonstandard(name: str, folder: Path | None = None) -> str | None:
    """How cached dataset `name` differs from its standard recipe (the recipe's size, seed 0),
    e.g. a `--steps 5000` preview; None when it is the standard dataset."""
    recipe = find_recipe(name, folder)
    metadata = read_minari_info(name).metadata
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
        "(offrl/behavior/policies changed since), or an older offrl made it (without recording "
        "them, or with actions that depended on the CPU); make it again: "
        f"`offrl data make {name} --overwrite`."
    )
