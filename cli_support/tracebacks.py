"""Without -v, no traceback reaches the console: the CLI says why it failed in one line.

Beam prints a failing step's traceback several times over: its DoFn runner and SDK worker log
it, the SDK worker also prints it, and with worker processes (--direct_running_mode
multi_processing) each worker prints it to the stderr it shares with the launcher, and the job
service logs it once more. Two filters keep them off: one for log records, one for the bytes
that reach file descriptor 2 (console._copy_without_noise), whichever process wrote them.
"""

from __future__ import annotations

import logging
import re

_START = b"Traceback (most recent call last):"
_CHAINED = (b"During handling of the above exception", b"The above exception was the direct cause")
# The line that ends a traceback: "OSError: [Errno 28] ...", "cli_support.errors.RunFailedError: ...".
_EXCEPTION_LINE = re.compile(rb"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


def drop_logged_tracebacks(record: logging.LogRecord) -> bool:
    """A logging filter: False (drop) for Beam's records that carry a traceback, the failure's
    own reports, which run_main makes once, in one line."""
    return not (record.name.startswith("apache_beam")
                and (record.exc_info or "Traceback (most recent call last)" in record.getMessage()))


class TracebackDropper:
    """Decides, line by line, which lines of a byte stream are not part of a Python traceback
    (chained tracebacks included: a traceback ends at its exception line)."""

    def __init__(self) -> None:
        self._state = None   # None: outside; "frames": inside, before its exception line; "after"

    def keep(self, line: bytes) -> bool:
        if line.startswith(_START):
            self._state = "frames"
            return False
        if self._state == "frames":
            if not line.startswith((b" ", b"\t")):
                self._state = "after"   # the exception line
            return False
        if self._state == "after":
            # What may follow an exception line: its message's further lines, a chained traceback.
            if not line.strip() or line.startswith((b" ", b"\t", *_CHAINED)) or _EXCEPTION_LINE.match(line):
                return False
            self._state = None
        return True

    def holds(self, partial: bytes) -> bool:
        """Whether a line still being written must wait for its end: it may belong to a traceback."""
        return self._state is not None or _START.startswith(partial[:len(_START)])
