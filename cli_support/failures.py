"""Why a run failed, in one line a user can act on: what failed, on which file, what to do.

Causes come from two places. Code that knows the file raises RunFailedError with the whole
line (a shard that cannot be written, an input that vanished). Anything else is classified
from its message: a full disk, a read-only or forbidden path and exhausted memory read the
same whether Python, TensorFlow or a cloud client raised them.

Beam's runners hand a worker's exception to the launcher as a RuntimeError whose message is
the worker's traceback text (the exception object stays in the worker), so both are read
from that text too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import traceback
from collections.abc import Callable, Iterator

from cli_support.errors import RunFailedError

# A RunFailedError raised inside a Beam worker, as its traceback text names it; Beam appends
# the step's name to the message.
_WORKER_CAUSE = re.compile(r"^cli_support\.errors\.RunFailedError: (.+?)(?: \[while running '[^']*'\])?$", re.M)
# An exception line of a traceback text: "OSError: [Errno 28] No space left on device".
_EXCEPTION_LINE = re.compile(r"^((?:[\w.]+\.)?\w*(?:Error|Exception|Exit)\w*): ?(.*)$", re.M)


@dataclasses.dataclass(frozen=True)
class _Kind:
    signs: tuple[str, ...]   # what a message of this kind contains
    meaning: str
    advice: str


_NO_SPACE = _Kind(("No space left on device", "[Errno 28]"), "no space left on device", "free space or write elsewhere")
_KINDS = (
    _NO_SPACE,
    _Kind(("Read-only file system", "[Errno 30]"), "read-only file system", "write elsewhere"),
    _Kind(("Permission denied", "PermissionDenied", "[Errno 13]", "Forbidden", "403 "), "permission denied",
          "check the path's permissions (or your credentials for a remote store)"),
    _Kind(("MemoryError", "Cannot allocate memory", "OOM when allocating", "std::bad_alloc"), "out of memory",
          "give it more memory or use smaller batches"),
)


def _kind(text: str) -> _Kind | None:
    return next((k for k in _KINDS if any(sign in text for sign in k.signs)), None)


def _innermost(e: BaseException) -> tuple[BaseException, str | None]:
    """The exception at the bottom of `e`'s chain, and the path it concerns where a filesystem
    said so (Beam's BeamIOError keeps each path's exception in `exception_details`)."""
    path = None
    while True:
        details = getattr(e, "exception_details", None)
        if isinstance(details, dict) and details:
            key, inner = next(iter(details.items()))
            path = path or key   # the outermost: the path as the user gave it
        else:
            inner = e.__cause__ or e.__context__
        if not isinstance(inner, BaseException):
            return e, path
        e = inner


def root_cause(e: BaseException) -> tuple[str, str | None]:
    """The innermost exception behind `e`, as "Type: message" (its first line), and the path
    it concerns if known."""
    e, path = _innermost(e)
    text = str(e)
    if "Traceback (most recent call last)" in text:   # a worker's traceback: its first exception is the cause
        found = _EXCEPTION_LINE.search(text)
        if found:
            return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}".rstrip(": "), path
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(e).__name__}: {first_line}".rstrip(": "), path


def worker_cause(e: BaseException) -> str | None:
    """The line of a RunFailedError raised inside a Beam worker, from the traceback text
    that reached the launcher; None when none was."""
    named = _WORKER_CAUSE.search("".join(traceback.format_exception(e)))
    return named.group(1) if named else None


def describe(e: BaseException) -> str:
    """The root cause of `e`, with what it means and what to do where it is a kind users meet
    (disk full, read-only, no permission, out of memory)."""
    cause, path = root_cause(e)
    kind = _kind(cause)
    where = f" on {path}" if path else ""
    return f"{kind.meaning}{where} ({cause}): {kind.advice}" if kind else f"{cause}{where}"


def explain(e: BaseException) -> str:
    """One line for any failure: the cause a worker named itself, else `describe(e)`."""
    return worker_cause(e) or describe(e)


def cannot_write(e: BaseException, path: str, written: int, flag: str) -> str:
    """The line for a failed write of `path` after `written` bytes; `flag` names the output's flag."""
    cause, _ = root_cause(e)
    kind = _kind(cause)
    if kind is None:
        return f"cannot write {path} ({cause}): check {flag}"
    if kind is _NO_SPACE:
        return f"no space left on device while writing {path} ({written / 1e6:.1f} MB written): " \
               f"free space or choose another {flag}"
    return f"{kind.meaning} while writing {path}: choose another {flag}"


@contextlib.contextmanager
def writing(path: str, flag: str, written: Callable[[], int] = lambda: 0) -> Iterator[None]:
    """Turns a failure to write `path` (an OSError, or a remote store's own error) into a
    RunFailedError with `cannot_write`'s line (`written`: the bytes written so far)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - every filesystem raises its own kinds
        raise RunFailedError(cannot_write(e, path, written(), flag)) from e
