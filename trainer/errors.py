"""Errors the user can fix: an unusable data directory or settings that do not fit the data."""

from cli_support.errors import UsageError


class TrainerError(UsageError):
    """A problem with the trainer's input or flags (exit code 2), not a crash."""


class DataError(TrainerError):
    """`data_dir` is not a complete, usable preprocessing run."""


class ConfigError(TrainerError):
    """The settings do not fit the data or the devices (e.g. a batch larger than the dataset)."""
