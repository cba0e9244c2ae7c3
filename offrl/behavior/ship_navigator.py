"""`offrl behavior ship-navigator`: ship one snapshot of an offrl/AntGoal-v0 SAC run as the
navigator that collects the AntMaze datasets, with its measured figures in the manifest: the
deterministic policy's return in offrl/AntGoal-v0 and the noisy collector's success rate on each
maze's evaluation task (start cell, evaluation goal, time limit; offrl.behavior.navigator).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tqdm.auto import tqdm

from offrl.behavior.manifest import (
    Evaluation,
    NavigatorPolicy,
    Returns,
    Training,
    policies_dir,
    read_actor,
    read_policy_manifest,
    sha256_file,
    write_policy_manifest,
)
from offrl.behavior.measure import EVAL_EPISODES, EVAL_SEED, actor_policy, episode_returns_of
from offrl.behavior.measure import summary as return_summary
from offrl.behavior.navigator import ACTION_NOISE, FAMILY, success_rate
from offrl.behavior.plot import plot_curve
from offrl.behavior.runs import read_run, recorded_returns, snapshot_path, train_command
from offrl.envs import ANT_GOAL_ENV_ID
from offrl.envs.antmaze import ANTMAZE_MAZES
from offrl.errors import ConfigError
from offrl.nets import TanhGaussianActor


def ship_navigator(
    run_dir: str | Path,
    step: int | None = None,
    out: str | Path | None = None,
    episodes: int = EVAL_EPISODES,
    progress: bool = True,
) -> NavigatorPolicy:
    """Measure one snapshot of an offrl/AntGoal-v0 SAC run (default: its last evaluated one) and
    write it as the antmaze navigator, with its learning curve and manifest entry."""
    run_dir, folder = Path(run_dir), Path(out) if out is not None else policies_dir()
    run = read_run(run_dir, ANT_GOAL_ENV_ID)
    recorded = recorded_returns(run_dir)
    if not recorded:
        raise ConfigError(f"{run_dir} has no evaluated snapshots yet; let the run train longer.")
    step = max(recorded) if step is None else step
    if step not in recorded:
        raise ConfigError(
            f"{run_dir} has no evaluated snapshot at step {step}; "
            f"evaluated: {', '.join(map(str, recorded))}."
        )
    actor = TanhGaussianActor(tuple(run.config["hidden_dims"]), run.spec.action_dim)
    params = read_actor(snapshot_path(run_dir, step), actor, run.spec.obs_dim)
    measure, envs = episode_returns_of(ANT_GOAL_ENV_ID, episodes)
    try:
        returns = measure(actor_policy(actor, params))
    finally:
        envs.close()
    success = {
        maze: success_rate(actor, params, maze, episodes)
        for maze in tqdm(ANTMAZE_MAZES, desc="collector success per maze", disable=not progress)
    }
    file = f"{FAMILY}/navigator.msgpack"
    (folder / FAMILY).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(snapshot_path(run_dir, step), folder / file)
    plot_curve(run_dir, folder / FAMILY / "curve.png")
    entry = NavigatorPolicy(
        env_id=run.env,
        file=file,
        step=step,
        sha256=sha256_file(folder / file),
        hidden_dims=tuple(run.config["hidden_dims"]),
        action_dim=run.spec.action_dim,
        obs_dim=run.spec.obs_dim,
        evaluation=Evaluation(
            episodes=episodes,
            seed=EVAL_SEED,
            policy=f"return: tanh(mean); success: tanh(mean) + N(0, {ACTION_NOISE}²), clipped",
        ),
        returns=Returns(**return_summary(returns)),
        success=success,
        training=Training(
            seed=run.seed,
            steps=run.protocol["steps"],
            trained_steps=max(recorded),
            config=run.config,
            protocol=run.protocol,
            command=train_command(run),
            replay_command=None,
            curve=f"{FAMILY}/curve.png",
        ),
    )
    write_policy_manifest(read_policy_manifest(folder).with_navigator(FAMILY, entry), folder)
    return entry
