"""The launcher's job watcher, on a real Beam job whose runner holds on to it until it ends."""

import time

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from beam_pipeline import progress


class _Slow(beam.DoFn):
    def process(self, element):
        time.sleep(0.1)
        beam.metrics.Metrics.counter("test", "elements").inc()
        yield element


def test_a_job_the_runner_holds_shows_its_running_time_then_one_final_line(capsys):
    with progress.JobWatcher(every=0.2) as watcher:
        p = beam.Pipeline(runner=FnApiRunner())
        _ = p | beam.Create(range(10)) | beam.ParDo(_Slow())
        result = p.run()   # the in-process runner returns when the job has ended
        watcher.started(result)
        result.wait_until_finish()
    lines = capsys.readouterr().err.splitlines()
    running, final = lines[:-1], lines[-1]
    assert running and all(line.startswith("job RUNNING, ") for line in running), lines
    assert final.startswith("job DONE, ") and final.endswith(": test.elements 10"), lines
