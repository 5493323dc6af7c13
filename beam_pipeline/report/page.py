"""report.html: one self-contained page of what to check in a run before training.

`python -m beam_pipeline.report OUTPUT_DIR` (re)builds OUTPUT_DIR/report.html from the
output directory alone: manifest.json, stats/SPLIT.pb, quarantine/quarantine.jsonl and the
shards' sizes. The page fetches nothing: plots are inline PNGs, styles inline, no script,
and a Content-Security-Policy forbids any other source. Sections whose data a run did not
record (older manifests) say so. Large runs stay small: at most MAX_CHANNEL_PLOTS channels
are plotted (flagged ones first), MAX_TABLE_ROWS listed, QUARANTINE_EXAMPLES records shown
per reason. Everything that comes from data is escaped.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import shlex
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from beam_pipeline.report import plots, validation
from beam_pipeline.report.html import NOT_RECORDED, esc, flag, fmt, img, more, not_recorded, page, table
from beam_pipeline.report.plots import BinnedCounts
from beam_pipeline.statistics import drift, feature_stats, tfdv_histograms
from transforms import features
from transforms.manifest import (
    DriftReport,
    InputFile,
    LengthBuckets,
    Manifest,
    ManifestVersionError,
    SplitSummary,
    loads,
)
from transforms.outputs import DATA_DIR, MANIFEST, QUARANTINE_DIR, QUARANTINE_FILE, REPORT, SPLITS

MAX_CHANNEL_PLOTS = 24
MAX_TABLE_ROWS = 256
MAX_CLASSES = 50
MAX_LISTED_FILES = 20
QUARANTINE_EXAMPLES = 3
MAX_MESSAGE_CHARS = 400


@dataclasses.dataclass
class Quarantine:
    """What the quarantine file holds: records and samples lost per reason, and the first
    QUARANTINE_EXAMPLES records of each reason."""

    records: collections.Counter
    samples: collections.Counter
    examples: dict[str, list[dict[str, Any]]]


@dataclasses.dataclass
class RunOutputs:
    """Everything the report reads from an output directory."""

    output_dir: str
    manifest: Manifest
    stats: dict[str, statistics_pb2.DatasetFeatureStatistics]   # splits with a stats file
    drift: DriftReport | None
    drift_source: str                                            # where `drift` came from
    quarantine: Quarantine | None
    file_sizes: dict[str, int]                                   # shard name -> bytes
    schema: schema_pb2.Schema | None                             # stats/schema.pbtxt
    anomalies: anomalies_pb2.Anomalies | None                    # stats/anomalies.pbtxt


def _read_quarantine(path: str) -> Quarantine | None:
    if not FileSystems.exists(path):
        return None
    result = Quarantine(collections.Counter(), collections.Counter(), {})
    with FileSystems.open(path) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            reason = str(record.get("reason"))
            result.records[reason] += 1
            result.samples[reason] += int(record.get("samples") or 0)
            shown = result.examples.setdefault(reason, [])
            if len(shown) < QUARANTINE_EXAMPLES:
                shown.append(record)
    return result


def _file_sizes(output_dir: str) -> dict[str, int]:
    pattern = FileSystems.join(output_dir, DATA_DIR, "*")
    matched = FileSystems.match([pattern])[0].metadata_list
    return {m.path.rsplit("/", 1)[-1]: m.size_in_bytes for m in matched}


def _drift(manifest: Manifest, stats: dict) -> tuple[DriftReport | None, str]:
    if manifest.drift is not None:
        return manifest.drift, "recorded by the run"
    if all(s in stats for s in SPLITS):
        return drift.compare(stats["train"], stats["eval"]), "computed by the report with the default thresholds"
    return None, ""


def load(output_dir: str) -> RunOutputs:
    """Reads an output directory (local or any Beam filesystem)."""
    manifest_path = FileSystems.join(output_dir, MANIFEST)
    if not FileSystems.exists(manifest_path):
        raise FileNotFoundError(f"{manifest_path} not found: not a preprocessing output directory")
    with FileSystems.open(manifest_path) as f:
        manifest = loads(f.read().decode("utf-8"))
    stats = {}
    for split in SPLITS:
        path = feature_stats.stats_path(output_dir, split)
        if FileSystems.exists(path):
            datasets = feature_stats.read_stats(path).datasets
            if datasets:
                stats[split] = datasets[0]
    drift_report, drift_source = _drift(manifest, stats)
    return RunOutputs(output_dir, manifest, stats, drift_report, drift_source,
                      _read_quarantine(FileSystems.join(output_dir, QUARANTINE_DIR, QUARANTINE_FILE)),
                      _file_sizes(output_dir), *validation.read(output_dir))


# --- sections -------------------------------------------------------------------------

def _checks(run: RunOutputs) -> str:
    """The few numbers to look at first. (Not whether _SUCCESS exists: the page is built
    before it, also for runs that fail --max_bad_fraction, where it matters most.)"""
    m, items = run.manifest, []
    for split, s in m.splits.items():
        read, lost = s.examples_read, s.examples_quarantined
        items.append(f"{esc(split)}: {fmt(s.examples_written)} examples written, {fmt(lost)} quarantined "
                     f"({lost / read if read else 0.0:.1%} of read), {fmt(s.examples_truncated)} truncated")
    if run.drift is not None:
        flagged = run.drift.drifted
        items.append(f"drift: {len(flagged)} of {len(run.drift.features)} features flagged"
                     + (": " + esc(", ".join(flagged[:20])) if flagged else ""))
    else:
        items.append(f"drift: {NOT_RECORDED}")
    items.append(validation.check_line(run.anomalies))
    return "<h2>Checks</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _run(run: RunOutputs) -> str:
    m = run.manifest
    parts = ["<h2>Run</h2>"]
    parts.append(f"<p>Command: <code>{esc('python -m beam_pipeline ' + shlex.join(m.command))}</code></p>")
    parts.append(table(["spec", "value"], [[k, json.dumps(v)] for k, v in m.spec.to_json().items()]
                       + [["compression", m.compression], ["num_classes", m.num_classes], ["created", m.created]]))
    parts.append(_inputs(m.inputs))
    parts.append(_split_counts(m.splits))
    parts.append(_shards(m.splits, run.file_sizes))
    parts.append(_timings(m.timings))
    return "".join(parts)


def _inputs(inputs: tuple[InputFile, ...]) -> str:
    total = sum(i.bytes for i in inputs)
    rows = [[i.split, i.path, i.bytes] for i in inputs[:MAX_LISTED_FILES]]
    return (f"<h3>Inputs: {len(inputs):,} files, {total / 1e6:,.1f} MB</h3>"
            + table(["split", "file", "bytes"], rows) + more(len(inputs), MAX_LISTED_FILES, "files"))


_COUNT_KEYS = ("files_matched", "files_read", "files_quarantined", "examples_read", "examples_written",
               "examples_quarantined", "examples_truncated")


def _split_counts(splits: dict[str, SplitSummary]) -> str:
    rows = [[split] + [getattr(s, k) for k in _COUNT_KEYS] for split, s in splits.items()]
    return "<h3>Counts per split</h3>" + table(["split", *(k.replace("_", " ") for k in _COUNT_KEYS)], rows)


def _shards(splits: dict[str, SplitSummary], sizes: dict[str, int]) -> str:
    rows = []
    for split, s in splits.items():
        shards = s.shards
        total = sum(sizes.get(sh.file.rsplit("/", 1)[-1], 0) for sh in shards)
        rows.append([split, f"{len(shards)} shards", sum(sh.examples for sh in shards), total])
        for sh in shards[:MAX_LISTED_FILES]:
            rows.append(["", sh.file, sh.examples, sizes.get(sh.file.rsplit("/", 1)[-1], NOT_RECORDED)])
        if len(shards) > MAX_LISTED_FILES:
            rows.append(["", f"... and {len(shards) - MAX_LISTED_FILES:,} more", "", ""])
    return "<h3>Shards</h3>" + table(["split", "file", "examples", "bytes"], rows)


def _timings(timings: dict[str, float | None] | None) -> str:
    if not timings:
        return not_recorded("Timings per phase")
    # None: a phase the launcher could not see (workers on other machines).
    rows = [[phase, "not seen" if seconds is None else float(seconds)] for phase, seconds in timings.items()]
    return "<h3>Timings per phase (s)</h3>" + table(["phase", "seconds"], rows)


def _standard_bars(stats: statistics_pb2.FeatureNameStatistics | None) -> BinnedCounts | None:
    if stats is None:
        return None
    histogram = tfdv_histograms.find(stats.num_stats, statistics_pb2.Histogram.STANDARD)
    if histogram is None or not histogram.buckets:
        return None
    _, _, counts = tfdv_histograms.bins(histogram)
    return BinnedCounts(tfdv_histograms.boundaries(histogram), counts)


def _feature(run: RunOutputs, split: str, name: str) -> statistics_pb2.FeatureNameStatistics | None:
    return feature_stats.feature(run.stats[split], name) if split in run.stats else None


def _drift_cells(run: RunOutputs, name: str) -> list[Any]:
    d = run.drift.get(name) if run.drift else None
    return [d.distance if d else "-", flag(d.drifted if d else None)]


def _channels(run: RunOutputs) -> str:
    parts = ["<h2>Values per channel</h2>"]
    if not run.stats:
        return parts[0] + not_recorded("Per-channel statistics (stats/*.pb)")
    splits = [s for s in SPLITS if s in run.stats]
    names = [feature_stats.feature_name(f) for f in run.stats[splits[0]].features
             if feature_stats.feature_name(f).startswith(features.X + "[")
             and f.validation_derived_source.deriver_name != drift.BINS_DERIVER]
    if run.drift is not None:
        parts.append(f"<p>Drift: Jensen-Shannon divergence of eval against train on train's quantile bins "
                     f"({esc(run.drift_source)}); flagged above its threshold (see docs/report.md).</p>")
    rows = []
    for name in names[:MAX_TABLE_ROWS]:
        row = [name]
        for split in splits:
            stats = _feature(run, split, name)
            row += [stats.num_stats.mean, stats.num_stats.std_dev, stats.num_stats.min, stats.num_stats.max] \
                if stats else ["-"] * 4
        rows.append(row + _drift_cells(run, name))
    headers = ["channel"] + [f"{s} {k}" for s in splits for k in ("mean", "std", "min", "max")] + ["JSD", "flag"]
    parts.append(table(headers, rows))
    parts.append(more(len(names), MAX_TABLE_ROWS, "channels (see stats/*.pb)"))
    parts.append(_channel_plots(run, names, splits))
    return "".join(parts)


def _channel_plots(run: RunOutputs, names: list[str], splits: list[str]) -> str:
    """Overlaid train/eval histograms: flagged channels first (largest distance first)."""
    def order(indexed: tuple[int, str]) -> tuple:
        d = run.drift.get(indexed[1]) if run.drift else None
        return (not (d and d.drifted), -(d.distance if d and d.drifted else 0.0), indexed[0])

    shown = [name for _, name in sorted(enumerate(names), key=order)[:MAX_CHANNEL_PLOTS]]
    figures = []
    for name in shown:
        bars = {s: b for s in splits if (b := _standard_bars(_feature(run, s, name))) is not None}
        d = run.drift.get(name) if run.drift else None
        title = name + (f"  JSD {d.distance:.3g}" + ("  DRIFT" if d.drifted else "") if d else "")
        figures.append(img(plots.overlaid_histograms(title, bars, bool(d and d.drifted)), f"histogram of {name}"))
    note = (f"<p class='muted'>Plotted: {len(shown)} of {len(names)} channels (flagged first).</p>"
            if len(shown) < len(names) else "")
    return "<h3>Value histograms, train and eval overlaid</h3>" + note + f"<div class='plots'>{''.join(figures)}</div>"


def _per_element(run: RunOutputs) -> str:
    """For --per_element runs: the normalization statistics per element, summarized."""
    m = run.manifest
    if not m.spec.per_element:
        return ""
    x = m.statistics.x
    mean, std = np.asarray(x.mean, dtype=np.float64), np.asarray(x.std, dtype=np.float64)
    rows = [[name] + [float(f(v)) for f in (np.min, np.median, np.max)] for name, v in (("mean", mean), ("std", std))]
    return ("<h3>Per-element statistics (train, used for normalization)</h3>"
            + table(["statistic", "min over elements", "median", "max"], rows)
            + img(plots.element_maps(mean.reshape(len(mean), -1), std.reshape(len(std), -1)),
                  "per-element mean and std"))


def _lengths(run: RunOutputs) -> str:
    m = run.manifest
    parts = ["<h2>Lengths</h2>"]
    max_length = m.max_length
    bars = {s: b for s in SPLITS if (b := _standard_bars(_feature(run, s, features.LENGTH))) is not None}
    if bars:
        parts.append(img(plots.length_histograms(bars, max_length), "length histograms"))
    else:
        parts.append(not_recorded("Length histograms"))
    padding = m.padding or {}
    rows = []
    for split in (s for s in SPLITS if s in m.splits or s in run.stats):
        num = _feature(run, split, features.LENGTH)
        pad = padding.get(split)
        pad_cells = [pad.padding_fraction, pad.stored_values, pad.valid_values] if pad else [NOT_RECORDED] * 3
        rows.append([split, *((num.num_stats.min, num.num_stats.mean, num.num_stats.max) if num else ["-"] * 3),
                     m.splits[split].examples_truncated if split in m.splits else NOT_RECORDED, *pad_cells])
    parts.append(table(["split", "min", "mean", "max", "truncated samples", "padding fraction", "stored values",
                        "valid values"], rows))
    parts.append(f"<p>max_length: {esc(fmt(max_length))}. Length buckets: "
                 + ("" if m.length_buckets is not None else "none" if m.format_version >= 2 else NOT_RECORDED)
                 + "</p>")
    if m.length_buckets is not None:
        parts.append(_length_buckets(m.length_buckets))
    return "".join(parts)


def _length_buckets(buckets: LengthBuckets) -> str:
    """One row per bucket: its bound, then per split its examples, shard files and padding."""
    splits = [s for s in SPLITS if s in buckets.splits]
    by_bound = {s: {b.length: b for b in buckets.splits[s]} for s in splits}
    rows = []
    for bound in buckets.bounds:
        row: list[Any] = [bound]
        for split in splits:
            b = by_bound[split].get(bound)
            row += [b.examples, b.shards, NOT_RECORDED if b.padding_fraction is None else b.padding_fraction] \
                if b else [NOT_RECORDED] * 3
        rows.append(row)
    return table(["bound (steps)", *(f"{s} {k}" for s in splits for k in ("examples", "shards", "padding"))], rows)


def _label_counts(run: RunOutputs) -> dict[str, dict[str, float]]:
    counts = {}
    for split in SPLITS:
        label = _feature(run, split, features.LABEL)
        if label is not None:
            counts[split] = {b.label: b.sample_count for b in label.string_stats.rank_histogram.buckets}
    return counts


def _targets(run: RunOutputs) -> str:
    """Regression targets: their distribution per split, and the standardization the records hold."""
    m = run.manifest
    parts = ["<h2>Regression targets</h2>"]
    splits = [s for s in SPLITS if _feature(run, s, features.LABEL) is not None]
    rows = [[s, *(getattr(_feature(run, s, features.LABEL).num_stats, k) for k in ("mean", "std_dev", "min", "max"))]
            for s in splits]
    parts.append(table(["split", "mean", "std", "min", "max"], rows) if rows else not_recorded("Target statistics"))
    bars = {s: b for s in splits if (b := _standard_bars(_feature(run, s, features.LABEL))) is not None}
    if bars:
        d = run.drift.get(features.LABEL) if run.drift else None
        title = "target" + (f"  JSD {d.distance:.3g}" + ("  DRIFT" if d.drifted else "") if d else "")
        parts.append(img(plots.overlaid_histograms(title, bars, bool(d and d.drifted)), "histogram of the target"))
    t = m.statistics.target
    if t is not None and t.standardized:
        parts.append(f"<p>The records hold (target - {t.mean:.6g}) / {t.std:.6g}, the training mean and std; "
                     "the trainer's serving signature returns the original units.</p>")
    return "".join(parts)


def _labels(run: RunOutputs) -> str:
    m = run.manifest
    if m.label_type == "regression":
        return _targets(run)
    if m.label_type == "none":
        return "<h2>Labels</h2><p>None: the data is unlabeled (--label_type none).</p>"
    counts = _label_counts(run)
    header = "<h2>Labels</h2>"
    if not counts:
        train = m.statistics.train_label_counts
        return header + (table(["class", "train samples"], sorted(train.items())) if train
                         else not_recorded("Label counts"))
    vocabulary = m.label_vocabulary

    def class_id(c: str) -> Any:
        """The id the trainer sees: the vocabulary index of a string label, the label itself
        for integer labels."""
        if vocabulary is not None:
            return vocabulary.index(c) if c in vocabulary else "not in vocabulary"
        return int(c) if c.lstrip("-").isdigit() else c

    def order(c: str) -> tuple:
        i = class_id(c)
        return (0, i, "") if isinstance(i, int) else (1, 0, c)

    classes = sorted({c for split_counts in counts.values() for c in split_counts}, key=order)
    shown = classes[:MAX_CLASSES]
    d = run.drift.get(features.LABEL) if run.drift else None
    rows = [[class_id(c), c, *(split_counts.get(c, 0) for split_counts in counts.values())] for c in shown]
    fractions = plots.label_fractions(shown, {s: [c.get(k, 0) for k in shown] for s, c in counts.items()})
    parts = [header, img(fractions, "samples per class"),
             table(["id", "name", *(f"{s} samples" for s in counts)], rows)]
    parts.append(more(len(classes), MAX_CLASSES, "classes (see stats/*.pb)"))
    if d is not None:
        parts.append(f"<p>Class frequencies differ most for <code>{esc(d.where)}</code>: L-infinity distance "
                     f"{d.distance:.3g} (threshold {d.threshold:.3g}) {flag(d.drifted)}</p>")
    return "".join(parts)


def _quarantine(run: RunOutputs) -> str:
    parts = ["<h2>Quarantine</h2>"]
    q = run.quarantine
    if q is None:
        return parts[0] + not_recorded("Quarantine file")
    if not q.records:
        return parts[0] + "<p class='ok'>Nothing was quarantined.</p>"
    parts.append(table(["reason", "records", "samples lost"],
                       [[r, n, q.samples[r]] for r, n in q.records.most_common()]))
    for reason, _ in q.records.most_common():
        rows = [[r.get("split", ""), r.get("file", ""), "file" if r.get("sample_index") is None else r["sample_index"],
                 str(r.get("message", ""))[:MAX_MESSAGE_CHARS]] for r in q.examples[reason]]
        parts.append(f"<h3>{esc(reason)}: first {len(rows)} of {q.records[reason]:,}</h3>"
                     + table(["split", "file", "sample", "message"], rows))
    return "".join(parts)


def render(run: RunOutputs) -> str:
    """The page's HTML."""
    title = f"Preprocessing report: {run.output_dir}"
    body = "".join([f"<h1>{esc(title)}</h1>", _checks(run), _run(run), _channels(run), _per_element(run),
                    _lengths(run), _labels(run), validation.section(run.schema, run.anomalies), _quarantine(run)])
    return page(title, body)


def write_report(output_dir: str) -> str:
    """Builds OUTPUT_DIR/report.html from the output directory; returns its path."""
    path = FileSystems.join(output_dir, REPORT)
    page = render(load(output_dir))
    with FileSystems.create(path) as f:
        f.write(page.encode("utf-8"))
    return path


def main(argv: list[str] | None = None) -> None:
    """Exit status 0 with the page's path printed, 2 when the directory holds no run."""
    parser = argparse.ArgumentParser(prog="python -m beam_pipeline.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="a preprocessing run's output directory")
    args = parser.parse_args(argv)
    try:
        print(write_report(args.output_dir))
    except (FileNotFoundError, ManifestVersionError) as e:
        parser.error(str(e))

