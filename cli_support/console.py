"""The command lines' console: no TensorFlow start-up noise, and exit codes that mean something.

Shared by both CLIs (pipeline and trainer); imports no TensorFlow, as it must act before
TensorFlow loads.

TensorFlow's C++ runtime writes straight to file descriptor 2, and its start-up lines
(oneDNN, CUDA stubs, cuInit, CPU features, all printed before its logging is initialized)
ignore TF_CPP_MIN_LOG_LEVEL; Python cannot intercept them. So `setup()` puts a pipe in front
of fd 2: a thread copies everything to the real stderr except those known lines. Warnings
and errors of every other kind, Python's included, still reach the user, less tracebacks
(cli_support/tracebacks.py: a failure is reported in one line); `-v/--verbose` turns the
filter off and the library logs back on.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import logging
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

from cli_support import failures, tracebacks
from cli_support.errors import RunFailedError, UsageError

# Lines of TensorFlow's C++ start-up that say nothing a user can act on.
_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|I\d{4} [\d:. ]+\d+ \S+\.cc:\d+\] .*"                       # C++ INFO lines
    rb"|[WE]\d{4} [\d:. ]+\d+ (cuda_\w+|cudart_stub|gpu_\w+|dso_loader)\.cc:\d+\] .*"   # no GPU here
    rb"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)$")
# What such a line can start with: a line still being written that could be one is held back.
_NOISE_STARTS = (b"WARNING: All log", b"I0", b"I1", b"W0", b"W1", b"E0", b"E1", b"To enable the")

_state: dict = {}


def verbosity_parser(quiet: bool) -> argparse.ArgumentParser:
    """The CLIs' shared -v/--verbose flag (and -q/--quiet where there is a progress display),
    as a parent parser: `main` reads it before TensorFlow loads."""
    p = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the libraries' logs (TensorFlow's C++ start-up lines, info logs)")
    if quiet:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    return p


def setup(verbose: bool) -> None:
    """Configures logging and, unless verbose, the stderr filter. Call before TensorFlow loads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    # Keras 2 (tf_keras), which tf.Transform and the trainer use: otherwise tf.Transform's
    # probe of tf.keras first loads Keras 3 (~0.6 s of start-up) for nothing.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _state.update(terminal=os.isatty(2), verbose=verbose)
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(tracebacks.drop_logged_tracebacks)
        _filter_stderr()


def stderr_is_terminal() -> bool:
    """Whether the user's stderr (behind the filter) is a terminal."""
    return _state.get("terminal", os.isatty(2))


def _filter_stderr() -> None:
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_copy_without_noise, args=(read_end, terminal), daemon=True, name="stderr-filter")
    thread.start()
    _state.update(terminal_fd=terminal, thread=thread)


def _copy_without_noise(read_end: int, terminal: int) -> None:
    pending = b""
    dropper = tracebacks.TracebackDropper()
    while chunk := os.read(read_end, 1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not _NOISE.match(line) and dropper.keep(line))
        # A line without its end yet (a progress bar's update, a prompt) goes out now unless
        # it may turn out to be noise or part of a traceback.
        if pending and not pending.lstrip(b"\r").startswith(_NOISE_STARTS) and not dropper.holds(pending):
            out, pending = out + pending, b""
        if out:
            os.write(terminal, out)
    if pending and not _NOISE.match(pending) and dropper.keep(pending):
        os.write(terminal, pending)


def _restore_stderr() -> None:
    """Puts the real stderr back and lets the filter write out what it still holds."""
    if "terminal_fd" not in _state:
        return
    sys.stderr.flush()
    os.dup2(_state.pop("terminal_fd"), 2)   # the pipe loses its last writer: the thread sees its end
    _state.pop("thread").join(timeout=5)


def run_main(run: Callable[[list[str] | None], object], argv: list[str] | None, interrupted: str,
             crashed: str) -> None:
    """Runs a CLI's `run(argv)` and exits with a status that reflects it: 0 success, 1 failure
    (RunFailedError), 2 usage error (UsageError, and argparse's), 130 interrupted.

    After a tf.Transform pipeline, this stack's interpreter often segfaults while tearing
    down protobuf objects (exit 139 after a complete, correct run). Once the outputs are
    closed and the streams flushed there is nothing left to finalize, so the process
    leaves with os._exit and the status reflects the run, not the teardown. The atexit
    handlers run first: Beam stops the job servers it started (Prism, Flink's Java job
    server) in them, which os._exit alone would leave running after every such run.

    Args:
      run: the CLI's run function.
      argv: its arguments (None: sys.argv).
      interrupted: what to say on Ctrl-C.
      crashed: what to say before any other exception, explained in one line (its traceback with -v).
    """
    code = 1
    signal.signal(signal.SIGINT, functools.partial(_stop_now, f"error: {interrupted}"))
    try:
        run(argv)
        code = 0
    except UsageError as e:
        _say(f"error: {e}")
        code = 2
    except RunFailedError as e:
        if _state.get("verbose") and e.__cause__ is not None:
            traceback.print_exception(e.__cause__)
        _say(f"error: {e}")
    except SystemExit as e:  # argparse: --help (0) or a bad flag (2, message already printed)
        code = e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        _say(f"error: {interrupted}")
        code = 130
    except BaseException as e:  # noqa: BLE001 - report, then exit non-zero
        if _state.get("verbose"):
            traceback.print_exc()
        hint = "" if _state.get("verbose") else " (-v shows the traceback)"
        _say(f"error: {crashed}: {failures.explain(e)}{hint}")
    finally:
        _exit(code)


def _say(line: str) -> None:
    """Writes a line to stderr in one write: print's separate line end can land after another
    thread's output (a library's log line) and join the two."""
    sys.stderr.write(line + "\n")


def _exit(code: int) -> None:
    atexit._run_exitfuncs()  # noqa: SLF001 - what a normal exit would run (Beam stops the job servers it started)
    sys.stdout.flush()
    _restore_stderr()
    sys.stderr.flush()
    os._exit(code)


@contextlib.contextmanager
def on_interrupt(action: Callable[[], None]) -> Iterator[None]:
    """Runs `action` (e.g. removing a run's partial output) if Ctrl-C ends the process meanwhile."""
    _state.setdefault("cleanups", []).append(action)
    try:
        yield
    finally:
        _state["cleanups"].remove(action)


def _stop_now(line: str, *_signal) -> None:
    """Ctrl-C: clean up and leave with 130, now.

    Raising KeyboardInterrupt (Python's default) lands wherever the main thread happens to be,
    and there TensorFlow or Beam may swallow it or turn it into another error: a Ctrl-C while
    tf.Transform traced its graph came out as a SystemError traceback and the run went on.
    Beam's worker threads stop with the process.
    """
    for action in reversed(_state.get("cleanups", [])):
        with contextlib.suppress(Exception):   # leave anyway
            action()
    with contextlib.suppress(RuntimeError):    # the main thread may have been inside a write to stderr
        _say(line)
    _exit(130)
