"""Progress of a run on stderr, and the time each phase took (for the manifest).

Phases: "scan" (headers, on the launcher), "analyze" (the statistics pass) and "write" (the
transform-and-write pass). With the CLI's in-process runner the workers are threads of the
launcher: they count each input they finish in `TRACKER`, and a thread of the launcher shows
it, per phase: inputs and MB done of the total, examples/s, elapsed and ETA (tqdm's bar on
a terminal, a plain line every few seconds otherwise, so logs stay short). With other
runners the workers are elsewhere: the launcher prints the job's state and Beam's counters
every few seconds instead, never a bar that cannot move.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from typing import Any

import apache_beam as beam
from tqdm import tqdm

PHASES = ("scan", "analyze", "write")
# Seconds between plain progress lines (not a terminal) and between terminal redraws.
LINE_SECONDS = 5.0
DRAW_SECONDS = 0.25


@dataclasses.dataclass
class PhaseCount:
    """What a phase has done so far."""

    inputs: int = 0
    bytes: int = 0
    examples: int = 0
    started: float | None = None
    finished: float | None = None


class Tracker:
    """Counts of finished inputs per phase, updated by any thread (cheap: one lock per input)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phases: dict[str, PhaseCount] = {}

    def begin(self, phase: str) -> None:
        with self._lock:
            count = self._phases.setdefault(phase, PhaseCount())
            count.started = count.started or time.monotonic()

    def input_done(self, phase: str, nbytes: int, examples: int) -> None:
        with self._lock:
            count = self._phases.setdefault(phase, PhaseCount())
            now = time.monotonic()
            count.started = count.started or now
            count.inputs += 1
            count.bytes += nbytes
            count.examples += examples
            count.finished = now

    def snapshot(self) -> dict[str, PhaseCount]:
        with self._lock:
            return {k: dataclasses.replace(v) for k, v in self._phases.items()}

    def reset(self) -> None:
        with self._lock:
            self._phases.clear()


TRACKER = Tracker()


def count_input(phase: str, read: Any) -> None:
    """A worker finished reading an input (a reader.TaskRead): counted for the launcher's
    display (in-process runs) and as Beam counters (what other runners can show)."""
    TRACKER.input_done(phase, read.input_bytes, read.report.samples)
    metrics = beam.metrics.Metrics
    metrics.counter(phase, "inputs_read").inc()
    metrics.counter(phase, "input_bytes").inc(read.input_bytes)
    metrics.counter(phase, "examples_read").inc(read.report.samples)


@dataclasses.dataclass(frozen=True)
class Totals:
    """What a phase will have done when complete: its inputs and their bytes."""

    inputs: int
    bytes: int


def _elapsed(count: PhaseCount, total: Totals, now: float) -> float:
    """Seconds the phase has run: until its last input once all are done, else until now."""
    end = count.finished if count.inputs >= total.inputs and count.finished else now
    return end - (count.started or end)


def _line(phase: str, count: PhaseCount, total: Totals, now: float) -> str:
    elapsed = _elapsed(count, total, now)
    meter = tqdm.format_meter(count.bytes, total.bytes, elapsed, unit="B", unit_scale=True, prefix=phase,
                              bar_format="{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
    rate = count.examples / elapsed if elapsed > 0 else 0.0
    return f"{meter} {count.inputs}/{total.inputs} inputs, {count.examples:,} examples ({rate:,.0f}/s)"


class Display:
    """Shows TRACKER's counts against the phases' totals until stopped (a context manager).

    Args:
      terminal: stderr is a terminal: redraw bars; otherwise print a line every LINE_SECONDS.
      enabled: False shows nothing (--quiet).
    """

    def __init__(self, terminal: bool, enabled: bool = True):
        self._totals: dict[str, Totals] = {}
        self._terminal = terminal
        self._enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="progress")
        self._bars: dict[str, tqdm] = {}

    def expect(self, phase: str, totals: Totals) -> None:
        """Sets what a phase will have done once complete (its progress shows from then on)."""
        self._totals[phase] = totals

    def __enter__(self) -> Display:
        if self._enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._enabled:
            self._thread.join()

    def _run(self) -> None:
        shown: dict[str, PhaseCount] = {}
        while not self._stop.wait(DRAW_SECONDS if self._terminal else LINE_SECONDS):
            self._show(TRACKER.snapshot(), shown)
        self._show(TRACKER.snapshot(), shown, final=True)
        for bar in self._bars.values():
            bar.close()

    def _show(self, counts: dict[str, PhaseCount], shown: dict[str, PhaseCount], final: bool = False) -> None:
        for phase in PHASES:
            count, total = counts.get(phase), self._totals.get(phase)
            if count is None or total is None or count.started is None:
                continue
            if self._terminal:
                self._draw(phase, count, total)
            elif count != shown.get(phase) or final:
                if final and shown.get(phase) == count:
                    continue
                print(_line(phase, count, total, time.monotonic()), file=sys.stderr, flush=True)
            shown[phase] = count

    def _draw(self, phase: str, count: PhaseCount, total: Totals) -> None:
        bar = self._bars.get(phase)
        if bar is not None and bar.disable:   # closed: the phase is complete
            return
        now = time.monotonic()
        if bar is None:
            bar = self._bars[phase] = tqdm(total=total.bytes, desc=phase, unit="B", unit_scale=True,
                                           file=sys.stderr, leave=True, dynamic_ncols=True)
            bar.start_t = time.time() - (now - count.started)   # tqdm keeps wall-clock time
        bar.update(count.bytes - bar.n)
        elapsed = _elapsed(count, total, now)
        rate = count.examples / elapsed if elapsed > 0 else 0.0
        bar.set_postfix_str(f"{count.inputs}/{total.inputs} inputs, {count.examples:,} ex, {rate:,.0f} ex/s",
                            refresh=True)
        if count.inputs >= total.inputs:
            bar.close()


def phase_seconds(counts: dict[str, PhaseCount]) -> dict[str, float | None]:
    """Seconds from each phase's first input to its last; None for a phase not seen here."""
    return {phase: (round(c.finished - c.started, 2) if (c := counts.get(phase)) and c.finished else None)
            for phase in PHASES}


def _counters(result: Any) -> dict[str, int]:
    """A job's Beam counters so far, as NAMESPACE.NAME: value (committed where the runner has
    them, else attempted)."""
    counters = result.metrics().query()["counters"]
    return {f"{c.key.metric.namespace}.{c.key.metric.name}": (c.committed if c.committed is not None else c.attempted)
            for c in counters}


class JobWatcher:
    """For jobs whose workers are not threads of this process (remote runners, worker
    processes): prints the job's state and Beam's counters on stderr, never a frozen bar.

    A line as soon as the runner hands the job back (`started`), then every `every` seconds,
    and a last one when the watcher exits. A runner may hold on to the job until it ends
    (the in-process runner with --direct_running_mode multi_processing); meanwhile a line
    every `every` seconds says how long it has run. Use as a context manager around the run.
    """

    def __init__(self, every: float = 10.0):
        self._every = every
        self._result: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="job-watcher")
        self._start = time.monotonic()

    def started(self, result: Any) -> None:
        """The runner handed back the job (its PipelineResult)."""
        self._result = result
        self._wake.set()

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        last = None
        while True:
            final = self._stop.is_set()
            elapsed = f"{time.monotonic() - self._start:,.0f} s"
            if self._result is None:
                if not final and time.monotonic() - self._start >= self._every:
                    print(f"job RUNNING, {elapsed} (this runner reports its counters when the job ends)",
                          file=sys.stderr, flush=True)
            else:
                status = self._status()
                if status != last or not final:   # no repeated last line
                    print(f"job {status[0]}, {elapsed}: {status[1]}", file=sys.stderr, flush=True)
                last = status
            if final:
                return
            self._wake.wait(self._every)
            self._wake.clear()

    def _status(self) -> tuple[str, str]:
        try:
            counters = _counters(self._result)
        except Exception:  # noqa: BLE001 - a runner may not expose metrics while running
            counters = {}
        shown = ", ".join(f"{k} {v:,}" for k, v in sorted(counters.items())) or "no counters yet"
        return str(getattr(self._result, "state", "UNKNOWN")).split(".")[-1], shown
