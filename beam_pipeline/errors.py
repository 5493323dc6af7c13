"""The pipeline's errors: why an input was refused (reason codes), and why a run stops."""

from __future__ import annotations

from cli_support.errors import RunFailedError, UsageError  # noqa: F401 - the pipeline's errors, in one place

# Machine-readable reason codes, written into quarantine records. Documented in README.md.
UNREADABLE = "unreadable"          # the file could not be opened or read (permissions, I/O)
CORRUPT = "corrupt"                # not a valid .npy/.npz/.npy.gz, bad zip/gzip, CRC mismatch
TRUNCATED = "truncated"            # the data ends before the header says it should
PICKLED = "pickled"                # object arrays: refused, never unpickled
TOO_LARGE = "too_large"            # header claims more bytes per sample than the limit
BAD_DTYPE = "bad_dtype"            # complex, string, ... where numbers belong
DTYPE_MISMATCH = "dtype_mismatch"  # numeric, but not the dataset's dtype
SHAPE_MISMATCH = "shape_mismatch"  # trailing shape differs from the dataset's
MISSING_KEY = "missing_key"        # x, y or lengths absent
BAD_LENGTHS = "bad_lengths"        # negative lengths, or lengths not summing to the rows of x
LABEL_COUNT = "label_count"        # label count != sample count
BAD_LABEL = "bad_label"            # label of the wrong kind (float, negative id, ...)
MISSING_LABEL = "missing_label"    # no label for a one-sample file (CSV / directory)
UNKNOWN_LABEL = "unknown_label"    # eval label the training vocabulary does not know
NON_FINITE = "non_finite"          # NaN or Inf in a sample
EMPTY_FILE = "empty_file"          # zero bytes, or zero samples
EMPTY_SAMPLE = "empty_sample"      # a sample with zero time steps
LAYOUT = "layout"                  # the file's layout cannot be determined or disagrees

REASONS = (UNREADABLE, CORRUPT, TRUNCATED, PICKLED, TOO_LARGE, BAD_DTYPE, DTYPE_MISMATCH, SHAPE_MISMATCH,
           MISSING_KEY, BAD_LENGTHS, LABEL_COUNT, BAD_LABEL, MISSING_LABEL, UNKNOWN_LABEL, NON_FINITE,
           EMPTY_FILE, EMPTY_SAMPLE, LAYOUT)


class BadInputError(Exception):
    """An input file or sample that cannot be used, with a reason code and a message.

    Attributes:
      reason: one of the reason codes above.
      message: human-readable detail.
      sample_index: index of the sample within its file, or None for the whole file.
    """

    def __init__(self, reason: str, message: str, sample_index: int | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.sample_index = sample_index


def as_bad_input(e: Exception) -> BadInputError:
    """Any failure while parsing a file quarantines it: a file can be broken in more ways than
    any list of checks foresees, and one file must never stop the run. Except MemoryError,
    which is re-raised: it says nothing about the file."""
    if isinstance(e, BadInputError):
        return e
    if isinstance(e, MemoryError):   # the worker's memory ran out: no reason to refuse a good file
        raise e
    return BadInputError(CORRUPT, f"cannot parse the file ({type(e).__name__}: {e})")
