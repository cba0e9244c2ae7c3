"""`offrl behavior`: train a SAC behaviour policy online, ship its snapshots (or the AntMaze
navigator), plot its curve."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import tyro

from offrl.behavior import sac
from offrl.behavior import ship as shipping
from offrl.behavior.measure import EVAL_EPISODES
from offrl.behavior.online import OnlineProtocol, train_behavior
from offrl.behavior.plot import plot_curve
from offrl.behavior.ship_navigator import ship_navigator as ship_navigator_snapshot


@dataclasses.dataclass
class BehaviorTrainArgs:
    """Train a SAC behaviour policy online; snapshots of its actor go to OUT/snapshots."""

    env: str
    """Gymnasium environment id, e.g. Hopper-v5."""
    out: Path
    """Run folder; a folder holding a checkpoint of the same settings is resumed."""
    seed: int = 0
    """Seed of the agent and the environment."""
    progress: bool = True
    """Show the progress bar."""
    config: Annotated[sac.Config, tyro.conf.OmitArgPrefixes] = dataclasses.field(
        default_factory=sac.Config
    )
    protocol: Annotated[OnlineProtocol, tyro.conf.OmitArgPrefixes] = dataclasses.field(
        default_factory=OnlineProtocol
    )


def main(argv: list[str]) -> int:
    """`offrl behavior train | ship | plot`; errors are OffrlErrors, reported by the CLI."""

    def ship(
        run: Path,
        env: str | None = None,
        out: Path | None = None,
        replay_run: Path | None = None,
        episodes: int = EVAL_EPISODES,
        replay_snapshots: int = 20,
        allow_below_threshold: bool = False,
        progress: bool = True,
    ) -> None:
        """Pick the expert, medium and replay snapshots of a SAC run, measure them over 100
        episodes and write them with the manifest and the learning curve.

        Args:
            run: Run folder of `offrl behavior train`.
            env: Environment id the run trained (checked against the run), e.g. Hopper-v5.
            out: Policies folder (default: $OFFRL_POLICIES_DIR, else offrl/behavior/policies).
            replay_run: A re-run of the start of RUN (same seed and settings, a smaller
                --eval-every) whose snapshots also serve as replay phases; checked to be the
                same training by its snapshots' bytes.
            episodes: Episodes each return is measured over.
            replay_snapshots: At most this many snapshots before the medium one are kept.
            allow_below_threshold: Ship an expert below the bar (tests and development only;
                the manifest marks it).
            progress: Show the progress bar.
        """
        result = shipping.ship(
            run,
            env,
            out,
            replay_run=replay_run,
            episodes=episodes,
            replay_snapshots=replay_snapshots,
            allow_below_threshold=allow_below_threshold,
            progress=progress,
        )
        print(result.report())

    def ship_navigator(
        run: Path,
        step: int | None = None,
        out: Path | None = None,
        episodes: int = EVAL_EPISODES,
        progress: bool = True,
    ) -> None:
        """Ship a snapshot of an offrl/AntGoal-v0 SAC run as the navigator that collects the
        AntMaze datasets, with its return, its success rate per maze and its learning curve.

        Args:
            run: Run folder of `offrl behavior train --env offrl/AntGoal-v0`.
            step: The snapshot's step (default: the last evaluated one).
            out: Policies folder (default: $OFFRL_POLICIES_DIR, else offrl/behavior/policies).
            episodes: Episodes the return and each success rate are measured over.
            progress: Show the progress bar.
        """
        entry = ship_navigator_snapshot(run, step, out, episodes, progress)
        rates = ", ".join(f"{maze} {rate:.0%}" for maze, rate in entry.success.items())
        print(
            f"Shipped the antmaze navigator (step {entry.step:,}): return "
            f"{entry.returns.return_mean:.1f} ± {entry.returns.return_std:.1f} in {entry.env_id}; "
            f"collector success {rates} over {entry.evaluation.episodes} episodes each."
        )

    def plot(run: Path, out: Path | None = None) -> None:
        """Plot a SAC run's learning curve (evaluation return against env steps) as a PNG.

        Args:
            run: Run folder of `offrl behavior train` (may still be training).
            out: PNG file to write (default: RUN/curve.png).
        """
        print(f"Wrote {plot_curve(run, out or run / 'curve.png')}")

    args = tyro.extras.subcommand_cli_from_dict(
        {"train": BehaviorTrainArgs, "ship": ship, "ship-navigator": ship_navigator, "plot": plot},
        prog="offrl behavior",
        args=argv,
    )
    if isinstance(args, BehaviorTrainArgs):
        train_behavior(args.env, args.out, args.config, args.protocol, args.seed, args.progress)
    return 0
