"""Shipped behaviour policies: picked from a SAC run, measured, verified on every load.

`ship` reads a run folder written by `offrl behavior train` and keeps what D4RL kept: an expert
(the best snapshot), a medium policy (the snapshot whose return is about one third of the
expert's) and the snapshots before it, each standing for the training steps it played, for the
replay-style dataset. Every return in the manifest is measured over 100 episodes of the
deterministic policy tanh(mean) in one batch of vectorised envs with one jitted policy call per
step. The files are actor parameters only (flax msgpack); `manifest.json` records their sha256,
and `load_actor` refuses a file whose hash differs.

Layout: `<policies>/manifest.json` and `<policies>/<env>/{expert,medium,replay_NN}.msgpack`
plus `<env>/curve.png`, where `<policies>` is `$OFFRL_POLICIES_DIR` or this package's
`policies/` folder. The manifest is `{"format": 1, "envs": {<env>: entry}}`; an entry holds
env_id, obs_dim, action_dim, max_action, hidden_dims, expert_min_return, evaluation (episodes,
seed), training (seed, steps, trained_steps, config, protocol, command, replay_command: the
`--replay-run`'s command or null, curve), random (return mean/std), medium and expert (file,
sha256, step, return_mean, return_std; medium's target, expert's below_threshold) and replay: the
phases in training order, each {file, sha256, step, steps, return_mean, return_std}, the first
{file: null, policy: "random", steps: start_steps}.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.serialization
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from offrl.behavior import sac
from offrl.behavior.train import OnlineProtocol
from offrl.envs import make_vector_env
from offrl.errors import ConfigError, DatasetError
from offrl.evaluate import run_episodes
from offrl.nets import TanhGaussianActor
from offrl.results import atomic_write_text, read_manifest, read_records

POLICIES_ENV_VAR = "OFFRL_POLICIES_DIR"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
EVAL_EPISODES = 100
EVAL_SEED = 0
EXPERT_MIN_RETURN = {"hopper": 3000.0, "halfcheetah": 10000.0, "walker2d": 4000.0}
"""The issue's bar for an expert: mean return over 100 episodes."""
LOCOMOTION_ENVS = {
    "hopper": "Hopper-v5",
    "halfcheetah": "HalfCheetah-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
}
"""Short name -> the gymnasium env its policies were trained in."""
MEDIUM_FRACTION = 1.0 / 3.0
"""D4RL's medium policy reached about a third of the expert's return."""

Params = Any  # a flax parameter pytree of TanhGaussianActor


def policies_dir() -> Path:
    """Where shipped policies live: `$OFFRL_POLICIES_DIR` (tests, dev), else the repo's copy."""
    override = os.environ.get(POLICIES_ENV_VAR)
    return Path(override) if override else Path(__file__).parent / "policies"


def env_short_name(env_id: str) -> str:
    """'HalfCheetah-v5' -> 'halfcheetah': the name datasets and folders use."""
    return env_id.partition("-v")[0].lower()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_policy_manifest(folder: Path | None = None) -> dict:
    """The shipped manifest; an empty one when nothing is shipped yet."""
    path = (folder or policies_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {"format": MANIFEST_FORMAT, "envs": {}}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"The behaviour-policy manifest {path} cannot be read ({error}): restore it with "
            f"`git checkout -- {path}` or ship the policies again with `offrl behavior ship`."
        ) from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(
            f"{path} has manifest format {manifest.get('format')!r}; this offrl reads format "
            f"{MANIFEST_FORMAT}. Ship the policies again with `offrl behavior ship`."
        )
    return manifest


def ship_hint(env_id: str) -> str:
    """The two commands that produce an env's shipped policies."""
    short = env_short_name(env_id)
    return (
        f"`offrl behavior train --env {env_id} --out runs/behavior/{short}` (hours), then "
        f"`offrl behavior ship --run runs/behavior/{short} --env {env_id}`"
    )


def env_entry(short: str, folder: Path | None = None) -> dict:
    """The manifest entry of one env; DatasetError naming the commands when none is shipped."""
    folder = folder or policies_dir()
    entry = read_policy_manifest(folder)["envs"].get(short)
    if entry is None:
        raise DatasetError(
            f"No shipped behaviour policies for '{short}' in {folder / MANIFEST_NAME}. "
            f"Make them with {ship_hint(LOCOMOTION_ENVS.get(short, short))}."
        )
    return entry


def actor_module(entry: dict) -> TanhGaussianActor:
    """The actor network a manifest entry's files hold parameters of."""
    return TanhGaussianActor(tuple(entry["hidden_dims"]), int(entry["action_dim"]))


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


def load_actor(entry: dict, policy: dict, folder: Path | None = None) -> Params:
    """A shipped policy's parameters after verifying the file's sha256 against the manifest."""
    path = (folder or policies_dir()) / policy["file"]
    if not path.is_file():
        raise DatasetError(
            f"Shipped policy file {path} is missing: restore it with `git checkout -- {path}` "
            "or ship the policies again with `offrl behavior ship`."
        )
    found = sha256_file(path)
    if found != policy["sha256"]:
        raise DatasetError(
            f"Shipped policy file {path} has sha256 {found}, but the manifest records "
            f"{policy['sha256']}: the file was changed or is corrupt. Restore it with "
            f"`git checkout -- {path}` or ship the policies again with `offrl behavior ship`."
        )
    return read_actor(path, actor_module(entry), int(entry["obs_dim"]))


@functools.partial(jax.jit, static_argnums=0)
def deterministic_actions(actor: TanhGaussianActor, params: Params, observations) -> jax.Array:
    """tanh(mean): the policy returns are measured with, as SAC evaluates."""
    return jnp.tanh(actor.apply(params, observations)[0])


# --- measuring returns ----------------------------------------------------------------------

Measure = Callable[[Callable[[np.ndarray], np.ndarray]], np.ndarray]


def episode_returns_of(
    env_id: str, episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED
) -> tuple[Measure, gym.vector.VectorEnv]:
    """A function measuring a batched policy's returns over `episodes` envs played at once, and
    the vector env to close afterwards. Every call uses the same episode seeds."""
    envs = make_vector_env(gym.spec(env_id), episodes)

    def measure(policy: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return run_episodes(lambda obs: policy(obs[0])[None], envs, [seed], episodes)[0]

    return measure, envs


def actor_policy(actor: TanhGaussianActor, params: Params) -> Callable[[np.ndarray], np.ndarray]:
    """Batched deterministic policy: observations (n, obs_dim) -> actions (n, action_dim)."""
    return lambda obs: np.asarray(deterministic_actions(actor, params, obs.astype(np.float32)))


def random_policy(action_space: gym.spaces.Box, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform actions for a batch of observations, seeded: D4RL's random policy."""
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high
    return lambda obs: rng.uniform(low, high, (obs.shape[0], *low.shape)).astype(np.float32)


def summary(returns: np.ndarray) -> dict[str, float]:
    return {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}


# --- choosing the snapshots -----------------------------------------------------------------


def snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / "snapshots" / f"step_{step:08d}.msgpack"


def recorded_returns(run_dir: Path) -> dict[int, float]:
    """Training-time evaluation (10 episodes) of every snapshot that has one, by step."""
    records = {int(r["step"]): float(r["eval_return"]) for r in read_records(run_dir)}
    return {s: r for s, r in sorted(records.items()) if snapshot_path(run_dir, s).is_file()}


def medium_window(recorded: dict[int, float], target: float) -> list[int]:
    """Snapshot steps before training first clearly passed the medium level (twice the target):
    the early-stopped policy D4RL used, not a later collapse that happens to score the same."""
    steps = []
    for step, value in recorded.items():
        if value > 2.0 * target:
            break
        steps.append(step)
    return steps


def closest(steps: Sequence[int], score: Callable[[int], float], count: int) -> list[int]:
    """The `count` steps with the smallest score, best first."""
    return sorted(steps, key=score)[:count]


def replay_phases(
    snapshot_steps: Sequence[int], medium_step: int, start_steps: int
) -> list[tuple[int | None, int]]:
    """(snapshot step or None for uniform random, env steps it played) for training steps
    [0, medium_step): steps before `start_steps` were uniform random (SAC's warm-up), later
    ones were played by the newest snapshot saved at or before them."""
    before = sorted(s for s in snapshot_steps if s < medium_step)
    random_steps = min(start_steps, medium_step)
    phases: list[tuple[int | None, int]] = [(None, random_steps)] if random_steps else []
    starts = [max(s, random_steps) for s in before]
    if before:
        starts[0] = random_steps  # the first snapshot also stands for any gap before it
    ends = [*starts[1:], medium_step]
    phases += [(s, e - b) for s, b, e in zip(before, starts, ends, strict=True) if e > b]
    return phases


def thin_phases(phases: list[tuple[int | None, int]], keep: int) -> list[tuple[int | None, int]]:
    """At most `keep` snapshot phases, evenly spaced; a dropped phase's steps go to the kept one
    before it, so the proportions of training time stay as they were."""
    random = [p for p in phases if p[0] is None]
    snapshots = [p for p in phases if p[0] is not None]
    if len(snapshots) <= keep:
        return phases
    kept = sorted({int(i) for i in np.round(np.linspace(0, len(snapshots) - 1, keep))})
    merged = []
    for index, (step, steps) in enumerate(snapshots):
        if index in kept:
            merged.append([step, steps])
        else:
            merged[-1][1] += steps
    return random + [(step, steps) for step, steps in merged]


# --- the run folder and the shipped entry ---------------------------------------------------


def read_run(run_dir: Path, env_id: str | None) -> dict:
    """run.json of a behaviour run, checked against the env the caller names."""
    run = read_manifest(run_dir)
    if run is None or run.get("kind") != "behavior":
        raise ConfigError(
            f"{run_dir} is not a behaviour run folder (no run.json of kind 'behavior'); pass "
            "the --out folder of `offrl behavior train`."
        )
    if env_id is not None and env_id != run["env"]:
        raise ConfigError(f"{run_dir} trained {run['env']}, not {env_id}; pass --env {run['env']}")
    return run


def train_command(run: dict, suffix: str = "") -> str:
    """The `offrl behavior train` command that reproduces a run (non-default settings only),
    writing to runs/behavior/<env><suffix>."""
    parts = ["offrl behavior train", f"--env {run['env']}"]
    parts.append(f"--out runs/behavior/{env_short_name(run['env'])}{suffix}")
    if run["seed"]:
        parts.append(f"--seed {run['seed']}")
    defaults = dataclasses.asdict(sac.Config()) | dataclasses.asdict(OnlineProtocol())
    defaults["hidden_dims"] = list(sac.Config().hidden_dims)
    for name, value in (run["config"] | run["protocol"]).items():
        if defaults.get(name) != value:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"--{name.replace('_', '-')} {shown}")
    return " ".join(parts)


SCHEDULE_FIELDS = ("steps", "eval_every", "checkpoint_every")
"""Protocol fields that only say how long and how often to save: SAC trains the same without
them (the snapshots of runs differing only in these are byte-identical at shared steps)."""


def training_settings(run: dict) -> dict[str, Any]:
    """What decides a run's training trajectory, flat: seed, SAC config, the rest of the
    protocol."""
    settings: dict[str, Any] = {"seed": run["seed"]}
    settings |= {f"config.{name}": value for name, value in run["config"].items()}
    for name, value in run["protocol"].items():
        if name not in SCHEDULE_FIELDS:
            settings[f"protocol.{name}"] = value
    return settings


def replay_run_snapshots(run_dir: Path, run: dict, replay_dir: Path) -> dict[int, float]:
    """The evaluated snapshots of `replay_dir`, a re-run of the start of `run_dir` that saved
    more often, by step. Refused unless it is the same training: the same env and settings, and
    byte-identical snapshots at every step both runs saved."""
    ours, theirs = training_settings(run), training_settings(read_run(replay_dir, run["env"]))
    differing = [name for name in sorted(ours | theirs) if ours.get(name) != theirs.get(name)]
    if differing:
        raise ConfigError(
            f"{replay_dir} did not train like {run_dir} (differs in {', '.join(differing)}); "
            f"re-run the start of {run_dir} with its settings ({train_command(run)}) into "
            "another --out, with fewer --steps and a smaller --eval-every."
        )
    replay_steps, run_steps = recorded_returns(replay_dir), recorded_returns(run_dir)
    shared = sorted(set(replay_steps) & set(run_steps))
    if not shared:
        raise ConfigError(
            f"{replay_dir} and {run_dir} saved no snapshot at the same step, so they cannot be "
            f"checked to be the same training; let {replay_dir} reach step {min(run_steps)}."
        )
    for step in shared:
        if sha256_file(snapshot_path(replay_dir, step)) != sha256_file(
            snapshot_path(run_dir, step)
        ):
            raise ConfigError(
                f"The step-{step} snapshots of {replay_dir} and {run_dir} differ: not the same "
                "training. XLA's float results depend on the machine, the library versions and "
                "the number of threads, so re-run it the way the run trained (same machine, "
                "XLA_FLAGS and CPU pinning), uninterrupted."
            )
    return replay_steps


@dataclass(frozen=True)
class ShipResult:
    short: str
    entry: dict
    folder: Path

    def report(self) -> str:
        """What was shipped, one line per policy."""
        entry = self.entry
        lines = [f"Shipped {entry['env_id']} policies to {self.folder / self.short}:"]

        def line(name: str, policy: dict) -> str:
            where = f"step {policy['step']:>8,}" if policy.get("step") is not None else " " * 13
            return (
                f"  {name:10} {where}  return {policy['return_mean']:9.1f} ± "
                f"{policy['return_std']:7.1f}"
            )

        lines.append(line("random", entry["random"]))
        for name in ("medium", "expert"):
            lines.append(line(name, entry[name]))
        if entry["expert"]["below_threshold"]:
            lines.append(
                f"  WARNING: the expert is below the {entry['expert_min_return']:.0f} bar "
                "(shipped with --allow-below-threshold: for tests and development only)"
            )
        replay = ", ".join(f"{p['step'] or 'random'}:{p['steps']}" for p in entry["replay"])
        lines.append(f"  replay     {len(entry['replay'])} phases (step:steps) {replay}")
        return "\n".join(lines)


def pick_expert(recorded: dict[int, float], returns_at: Callable[[int], float], count: int) -> int:
    """Of the `count` snapshots with the best training-time returns, the best measured one."""
    return max(closest(list(recorded), lambda s: -recorded[s], count), key=returns_at)


def pick_medium(
    recorded: dict[int, float],
    returns_at: Callable[[int], float],
    expert_step: int,
    target: float,
    count: int,
) -> int | None:
    """Of the `count` early snapshots (see medium_window) before the expert whose training-time
    return is closest to `target`, the one whose measured return is closest; None if none."""
    window = [s for s in medium_window(recorded, target) if s < expert_step]
    shortlist = closest(window, lambda s: abs(recorded[s] - target), count)
    return min(shortlist, key=lambda s: abs(returns_at(s) - target), default=None)


def ship(
    run_dir: str | Path,
    env_id: str | None = None,
    out: str | Path | None = None,
    *,
    replay_run: str | Path | None = None,
    episodes: int = EVAL_EPISODES,
    replay_snapshots: int = 20,
    candidates: int = 5,
    allow_below_threshold: bool = False,
    progress: bool = True,
) -> ShipResult:
    """Pick, measure and write an env's expert, medium and replay policies from a SAC run.

    Every return is measured over `episodes` episodes (only `candidates` snapshots are measured
    while choosing). The expert must reach EXPERT_MIN_RETURN unless `allow_below_threshold`
    (tests and development only; the entry says so). The replay phases come from the run's
    snapshots and those of `replay_run` (a re-run of its start that saved more often, see
    replay_run_snapshots), thinned to at most `replay_snapshots` snapshots.
    """
    if min(episodes, replay_snapshots, candidates) < 1:
        raise ConfigError("episodes, replay_snapshots and candidates must be >= 1")
    run_dir, folder = Path(run_dir), Path(out) if out is not None else policies_dir()
    run = read_run(run_dir, env_id)
    env_id, short = run["env"], env_short_name(run["env"])
    bar_return = EXPERT_MIN_RETURN.get(short)
    if bar_return is None and not allow_below_threshold:
        raise ConfigError(
            f"No expert return bar is set for {env_id} (known: {', '.join(EXPERT_MIN_RETURN)})."
        )
    recorded = recorded_returns(run_dir)
    if len(recorded) < 2:
        raise ConfigError(
            f"{run_dir} has {len(recorded)} evaluated snapshot(s); ship needs a run with at "
            "least two (train longer)."
        )
    snapshot_runs = dict.fromkeys(recorded, run_dir)
    if replay_run is not None:
        replay_run = Path(replay_run)
        replay_steps = replay_run_snapshots(run_dir, run, replay_run)
        snapshot_runs = dict.fromkeys(replay_steps, replay_run) | snapshot_runs
    entry = {"env_id": env_id, "hidden_dims": run["config"]["hidden_dims"], **run["spec"]}
    actor = actor_module(entry)
    measure, envs = episode_returns_of(env_id, episodes)
    measured: dict[int, np.ndarray] = {}
    bar = tqdm(desc=f"measure {short}", unit="policy", disable=not progress, dynamic_ncols=True)

    def returns_at(step: int) -> float:
        """Mean measured return of a snapshot (each measured once)."""
        if step not in measured:
            params = read_actor(snapshot_path(snapshot_runs[step], step), actor, entry["obs_dim"])
            measured[step] = measure(actor_policy(actor, params))
            bar.update()
        return float(measured[step].mean())

    try:
        expert_step = pick_expert(recorded, returns_at, candidates)
        below = bar_return is None or returns_at(expert_step) < bar_return
        if below and not allow_below_threshold:
            raise ConfigError(
                f"The best snapshot of {run_dir} (step {expert_step}) returns "
                f"{returns_at(expert_step):.1f} over {episodes} episodes, below the expert bar "
                f"{bar_return:.0f} for {env_id}: train longer (the run resumes from its "
                "checkpoint) and ship again."
            )
        target = MEDIUM_FRACTION * returns_at(expert_step)
        medium_step = pick_medium(recorded, returns_at, expert_step, target, candidates)
        if medium_step is None:
            raise ConfigError(
                f"Every snapshot of {run_dir} before the expert already returns more than "
                f"{2 * target:.0f}: no medium policy (about {target:.0f}) to ship."
            )
        start_steps = run["protocol"]["start_steps"]
        phases = replay_phases(list(snapshot_runs), medium_step, start_steps)
        phases = thin_phases(phases, replay_snapshots)
        for step, _ in phases:
            if step is not None:
                returns_at(step)
        random_returns = measure(random_policy(envs.single_action_space, EVAL_SEED))
    finally:
        bar.close()
        envs.close()

    def policy(name: str, step: int) -> dict:
        return {"file": f"{short}/{name}.msgpack", "step": step, **summary(measured[step])}

    entry |= {
        "expert_min_return": bar_return,
        "evaluation": {
            "episodes": episodes,
            "seed": EVAL_SEED,
            "policy": "deterministic tanh(mean); random = uniform actions",
        },
        "training": {
            "seed": run["seed"],
            "steps": run["protocol"]["steps"],
            "trained_steps": max(recorded),
            "config": run["config"],
            "protocol": run["protocol"],
            "command": train_command(run),
            "replay_command": None
            if replay_run is None
            else train_command(read_run(replay_run, env_id), "-replay"),
            "curve": f"{short}/curve.png",
        },
        "random": summary(random_returns),
        "medium": policy("medium", medium_step) | {"target": target},
        "expert": policy("expert", expert_step) | {"below_threshold": below},
        "replay": [],
    }
    snapshots = iter(range(len(phases)))
    for step, steps in phases:
        played = (
            {"policy": "random"} if step is None else policy(f"replay_{next(snapshots):02d}", step)
        )
        entry["replay"].append({"file": None, "step": step, "steps": steps} | played)
    shipped = [entry["expert"], entry["medium"], *(p for p in entry["replay"] if p["file"])]
    sources = {p["file"]: snapshot_path(snapshot_runs[p["step"]], p["step"]) for p in shipped}
    write_shipped(folder, short, entry, sources, lambda path: plot_curve(run_dir, path, entry))
    return ShipResult(short, read_policy_manifest(folder)["envs"][short], folder)


def write_shipped(
    folder: Path, short: str, entry: dict, sources: dict[str, Path], draw: Callable[[Path], None]
) -> None:
    """Copy the files into a staged env folder, swap it in, then record hashes in the manifest.

    A failure before the swap leaves the shipped folder as it was."""
    staging = folder / f".staging-{short}-{uuid.uuid4().hex}"
    target, retired = folder / short, folder / f".retired-{short}-{uuid.uuid4().hex}"
    hashes = {}
    try:
        staging.mkdir(parents=True)
        for relative, source in sources.items():
            shutil.copyfile(source, staging / Path(relative).name)
            hashes[relative] = sha256_file(staging / Path(relative).name)
        draw(staging / "curve.png")
        if target.exists():
            target.replace(retired)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    for policy in [entry["expert"], entry["medium"], *entry["replay"]]:
        if policy["file"] is not None:
            policy["sha256"] = hashes[policy["file"]]
    manifest = read_policy_manifest(folder)
    manifest["envs"][short] = entry
    manifest["envs"] = dict(sorted(manifest["envs"].items()))
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")


# --- learning curve -------------------------------------------------------------------------


def plot_curve(run_dir: str | Path, path: str | Path, entry: dict | None = None) -> Path:
    """Training-time evaluation return against env steps (PNG); with a shipped entry, the
    expert bar, the medium target and the chosen snapshots are marked."""
    from matplotlib.figure import Figure

    run_dir, path = Path(run_dir), Path(path)
    records = read_records(run_dir)
    if not records:
        raise ConfigError(f"{run_dir} has no records.jsonl evaluations to plot yet.")
    steps = np.asarray([r["step"] for r in records])
    mean = np.asarray([r["eval_return"] for r in records])
    std = np.asarray([r.get("eval_return_std", 0.0) for r in records])
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.add_subplot()
    axes.plot(steps, mean, color="C0", label="evaluation return (10 episodes)")
    axes.fill_between(steps, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0)
    run = read_manifest(run_dir) or {}
    title = f"SAC on {run.get('env', run_dir.name)}, seed {run.get('seed', '?')}"
    if entry is not None:
        if entry["expert_min_return"] is not None:
            axes.axhline(entry["expert_min_return"], color="C3", ls="--", lw=1, label="expert bar")
        axes.axhline(entry["medium"]["target"], color="C2", ls=":", lw=1, label="expert / 3")
        replay = [p for p in entry["replay"] if p["step"] is not None]
        axes.plot(
            [p["step"] for p in replay],
            [p["return_mean"] for p in replay],
            "|",
            color="C7",
            ms=10,
            label="replay snapshots (measured)",
        )
        by_step = dict(zip(steps.tolist(), mean.tolist(), strict=True))
        for name, marker in (("medium", "o"), ("expert", "*")):
            step = entry[name]["step"]
            axes.plot([step], [by_step[step]], marker, color="C1", ms=9, label=name)
    axes.set(xlabel="environment steps", ylabel="return", title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
