"""Optional loggers of a run's records: TensorBoard (`pip install 'offrl[tensorboard]'`)."""

from __future__ import annotations

from pathlib import Path

from offrl.errors import ConfigError


def tensorboard_writer_type(run_dir: Path | None) -> type:
    """tensorboardX's SummaryWriter, checked before the run folder is touched."""
    if run_dir is None:
        raise ConfigError("--tensorboard needs --out: the event files go into the run folder")
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ConfigError(
            "--tensorboard needs tensorboardX: pip install 'offrl[tensorboard]'"
        ) from err
    return SummaryWriter


def log_tensorboard(writer, records: list[dict]) -> None:
    for record in records:
        prefix = f"seed{record['seed']}"
        for name, value in record["losses"].items():
            writer.add_scalar(f"{prefix}/{name}", value, record["step"])
        for name in ("return", "normalized_score", "updates_per_s"):
            if record.get(name) is not None:
                writer.add_scalar(f"{prefix}/{name}", record[name], record["step"])
