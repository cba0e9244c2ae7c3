"""User-facing errors: each names the problem and the fix; the CLI prints them, exits non-zero."""


class OffrlError(Exception):
    """Base class for errors caused by input the user can fix."""


class UnknownTaskError(OffrlError):
    """A task name that no registry entry matches."""


class DatasetError(OffrlError):
    """A dataset that is missing, unreadable or malformed."""


class ConfigError(OffrlError):
    """An invalid agent, hyper-parameter or run option."""


class TrainingDiverged(OffrlError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class DiskFull(OffrlError):
    """A write failed for lack of space; everything written before it is intact."""
