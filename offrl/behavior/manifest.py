"""The shipped behaviour policies' manifest: a typed, versioned record with one reader and one
writer, and the verified loading of the policy files it lists.

Layout: `<policies>/manifest.json` and `<policies>/<env>/{expert,medium,replay_NN}.msgpack`
plus `<env>/curve.png`, where `<policies>` is `$OFFRL_POLICIES_DIR` or this package's
`policies/` folder. The manifest is a `PolicyManifest`, `{"format": 1, "envs": {<env>: entry}}`,
each entry an `EnvPolicies`; the JSON keys are the records' field names, in their order. The
files are actor parameters only (flax msgpack); the manifest records their sha256, and
`load_actor` refuses a file whose hash differs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import flax.serialization
import jax
import jax.numpy as jnp

from offrl.envs.families import FAMILIES, LOCOMOTION
from offrl.errors import DatasetError
from offrl.json_records import RecordMismatch, Unrecorded, from_json, to_json
from offrl.nets import TanhGaussianActor
from offrl.run_files import atomic_write_text

POLICIES_ENV_VAR = "OFFRL_POLICIES_DIR"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
LOCOMOTION_ENVS = {name: FAMILIES[name].behavior_env for name in LOCOMOTION}
"""Short name -> the gymnasium env its policies were trained in."""

Params = Any  # a flax parameter pytree of TanhGaussianActor


@dataclass(frozen=True, kw_only=True)
class Returns:
    return_mean: float
    return_std: float


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    episodes: int
    seed: int
    policy: str


@dataclass(frozen=True, kw_only=True)
class Training:
    seed: int
    steps: int
    trained_steps: int
    config: dict[str, Any]
    """The SAC config, as the run's run.json recorded it."""
    protocol: dict[str, Any]
    """The online protocol, as the run's run.json recorded it."""
    command: str
    replay_command: str | Unrecorded | None
    """The `--replay-run`'s command; None without one; UNRECORDED in entries shipped before
    the field existed (walker2d's)."""
    curve: str


@dataclass(frozen=True, kw_only=True)
class MediumPolicy:
    file: str
    step: int
    return_mean: float
    return_std: float
    target: float
    sha256: str


@dataclass(frozen=True, kw_only=True)
class ExpertPolicy:
    file: str
    step: int
    return_mean: float
    return_std: float
    below_threshold: bool
    sha256: str


@dataclass(frozen=True, kw_only=True)
class RandomPhase:
    """SAC's uniform warm-up: no file."""

    file: None = None
    step: None = None
    steps: int
    policy: Literal["random"] = "random"


@dataclass(frozen=True, kw_only=True)
class SnapshotPhase:
    file: str
    step: int
    steps: int
    return_mean: float
    return_std: float
    sha256: str


ReplayPhase = RandomPhase | SnapshotPhase
ShippedPolicy = MediumPolicy | ExpertPolicy | SnapshotPhase
"""A policy with a file."""


@dataclass(frozen=True, kw_only=True)
class EnvPolicies:
    """One env's shipped policies. Returns are measured over `evaluation.episodes` episodes of
    the deterministic policy; the replay phases are in training order, the first the warm-up."""

    env_id: str
    hidden_dims: tuple[int, ...]
    action_dim: int
    max_action: float
    obs_dim: int
    expert_min_return: float | None
    evaluation: Evaluation
    training: Training
    random: Returns
    medium: MediumPolicy
    expert: ExpertPolicy
    replay: tuple[ReplayPhase, ...]

    def level_policy(self, level: str) -> MediumPolicy | ExpertPolicy:
        """The policy that plays dataset level `level`: 'medium' or 'expert'."""
        return {"medium": self.medium, "expert": self.expert}[level]


@dataclass(frozen=True, kw_only=True)
class NavigatorPolicy:
    """A goal-reaching policy that collects a navigation family's data, steered by a planner
    (offrl.behavior.navigator). `returns` is the deterministic policy's return in its training
    env; `success` the noisy collector's success rate on each maze's evaluation task."""

    env_id: str
    file: str
    step: int
    sha256: str
    hidden_dims: tuple[int, ...]
    action_dim: int
    obs_dim: int
    evaluation: Evaluation
    returns: Returns
    success: dict[str, float]
    training: Training


@dataclass(frozen=True, kw_only=True)
class PolicyManifest:
    format: int = MANIFEST_FORMAT
    envs: dict[str, EnvPolicies] = dataclasses.field(default_factory=dict)
    navigators: dict[str, NavigatorPolicy] = dataclasses.field(default_factory=dict)

    def with_env(self, short: str, entry: EnvPolicies) -> PolicyManifest:
        """This manifest with `short`'s entry set, the envs in name order."""
        envs = dict(sorted((self.envs | {short: entry}).items()))
        return dataclasses.replace(self, envs=envs)

    def with_navigator(self, family: str, entry: NavigatorPolicy) -> PolicyManifest:
        """This manifest with `family`'s navigator set."""
        navigators = dict(sorted((self.navigators | {family: entry}).items()))
        return dataclasses.replace(self, navigators=navigators)


# --- the reader and the writer ---------------------------------------------------------------


def policies_dir() -> Path:
    """Where shipped policies live: `$OFFRL_POLICIES_DIR` (tests, dev), else the repo's copy."""
    override = os.environ.get(POLICIES_ENV_VAR)
    return Path(override) if override else Path(__file__).parent / "policies"


def read_policy_manifest(folder: Path | None = None) -> PolicyManifest:
    """The shipped manifest; an empty one when nothing is shipped yet. A missing, unknown or
    mistyped field is a DatasetError naming the file and the field."""
    path = (folder or policies_dir()) / MANIFEST_NAME
    if not path.is_file():
        return PolicyManifest()
    fix = f"`git checkout -- {path}` or ship the policies again with `offrl behavior ship`"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"The behaviour-policy manifest {path} cannot be read ({error}): restore it with {fix}."
        ) from error
    found = data.get("format") if isinstance(data, dict) else None
    if found != MANIFEST_FORMAT:
        raise DatasetError(
            f"{path} has manifest format {found!r}; this offrl reads format "
            f"{MANIFEST_FORMAT}. Ship the policies again with `offrl behavior ship`."
        )
    try:
        return from_json(PolicyManifest, data)
    except RecordMismatch as error:
        raise DatasetError(
            f"The behaviour-policy manifest {path} is not one this offrl reads: {error}. "
            f"Restore it with {fix}."
        ) from error


def manifest_text(manifest: PolicyManifest) -> str:
    """The manifest file's text."""
    return json.dumps(to_json(manifest), indent=2) + "\n"


def write_policy_manifest(manifest: PolicyManifest, folder: Path | None = None) -> None:
    atomic_write_text((folder or policies_dir()) / MANIFEST_NAME, manifest_text(manifest))


# --- looking up and loading shipped policies -------------------------------------------------


def env_short_name(env_id: str) -> str:
    """'HalfCheetah-v5' -> 'halfcheetah': the name datasets and folders use."""
    return env_id.partition("-v")[0].lower()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship_hint(env_id: str) -> str:
    """The two commands that produce an env's shipped policies."""
    short = env_short_name(env_id)
    return (
        f"`offrl behavior train --env {env_id} --out runs/behavior/{short}` (hours), then "
        f"`offrl behavior ship --run runs/behavior/{short} --env {env_id}`"
    )


def env_entry(short: str, folder: Path | None = None) -> EnvPolicies:
    """The manifest entry of one env; DatasetError naming the commands when none is shipped."""
    folder = folder or policies_dir()
    entry = read_policy_manifest(folder).envs.get(short)
    if entry is None:
        raise DatasetError(
            f"No shipped behaviour policies for '{short}' in {folder / MANIFEST_NAME}. "
            f"Make them with {ship_hint(LOCOMOTION_ENVS.get(short, short))}."
        )
    return entry


def navigator_entry(family: str = "antmaze", folder: Path | None = None) -> NavigatorPolicy:
    """The shipped navigator of a navigation family; DatasetError naming the commands if none."""
    folder = folder or policies_dir()
    entry = read_policy_manifest(folder).navigators.get(family)
    if entry is None:
        raise DatasetError(
            f"No shipped {family} navigator in {folder / MANIFEST_NAME}. Make it with "
            f"`offrl behavior train --env offrl/AntGoal-v0 --out runs/antmaze-sac --steps 500000` "
            "(hours), then `offrl behavior ship-navigator --run runs/antmaze-sac`."
        )
    return entry


def actor_module(entry: EnvPolicies | NavigatorPolicy) -> TanhGaussianActor:
    """The actor network a manifest entry's files hold parameters of."""
    return TanhGaussianActor(tuple(entry.hidden_dims), int(entry.action_dim))


def read_actor(path: Path, actor: TanhGaussianActor, obs_dim: int) -> Params:
    """Parameters from a flax msgpack file, checked against the network's structure."""
    template = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, obs_dim)))
    try:
        return flax.serialization.from_bytes(template, path.read_bytes())
    except (OSError, ValueError, KeyError) as error:
        raise DatasetError(
            f"{path} is not an actor of hidden sizes {list(actor.hidden_dims)} for "
            f"{obs_dim}-dim observations ({error}); restore the file or ship the policies again."
        ) from error


def load_actor(
    entry: EnvPolicies | NavigatorPolicy,
    policy: ShippedPolicy | NavigatorPolicy,
    folder: Path | None = None,
) -> Params:
    """A shipped policy's parameters after verifying the file's sha256 against the manifest."""
    path = (folder or policies_dir()) / policy.file
    if not path.is_file():
        raise DatasetError(
            f"Shipped policy file {path} is missing: restore it with `git checkout -- {path}` "
            "or ship the policies again with `offrl behavior ship`."
        )
    found = sha256_file(path)
    if found != policy.sha256:
        raise DatasetError(
            f"Shipped policy file {path} has sha256 {found}, but the manifest records "
            f"{policy.sha256}: the file was changed or is corrupt. Restore it with "
            f"`git checkout -- {path}` or ship the policies again with `offrl behavior ship`."
        )
    return read_actor(path, actor_module(entry), int(entry.obs_dim))
