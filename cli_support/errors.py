"""The two ways a command line fails on purpose, shared by every CLI (see console.run_main)."""


class UsageError(Exception):
    """The user asked for something impossible (flags, empty glob, unusable data): one line, exit 2."""


class RunFailedError(Exception):
    """The run went wrong for a known reason, or its result must not be used: one line, exit 1."""
