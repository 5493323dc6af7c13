"""report.html: content, escaping, old manifests, bounded size, and a real headless Chromium
with networking disabled (the page renders, its plots are there, nothing is fetched)."""

from __future__ import annotations

import glob
import html.parser
import json
import os
import shlex
import shutil

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from beam_pipeline.reading.samples import SampleBatch
from beam_pipeline.report import page as report_page
from beam_pipeline.report.html import esc
from beam_pipeline.sample_data import write_dataset
from beam_pipeline.statistics import drift, feature_stats
from beam_pipeline.statistics.feature_stats import StatsAccumulator
from tests.support.helpers import as_version_1, manifest, run_ok, shift_eval_channel
from transforms.features import DatasetSpec
from transforms.manifest import (
    Manifest,
    Padding,
    QuarantineSummary,
    Shard,
    SplitSummary,
    Statistics,
    ValueStatistics,
)

# A file name that is also markup: it must reach the page as text.
HOSTILE = 'train-<img src=x onerror="alert(1)">&amp.npz'
# What the browser may load: the page itself and inline data.
ALLOWED_SCHEMES = ("file:", "data:")


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory) -> str:
    """The sample data plus an unreadable file with a hostile name."""
    data = tmp_path_factory.mktemp("data")
    write_dataset(str(data))
    (data / HOSTILE).write_bytes(b"not an npz file <script>")
    return str(data)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_data) -> str:
    """One real CLI run on the sample data: the statistics, manifest and page are the run's own."""
    out = str(tmp_path_factory.mktemp("run") / "out")
    run_ok("--input", os.path.join(sample_data, "train-*.npz"), "--eval_input", os.path.join(sample_data, "test-*.npz"),
           "--output_dir", out, "--max_bad_fraction", "0.5")
    return out


def read_ragged(pattern: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The readable files' values (float64), lengths and labels, read with NumPy alone."""
    parts = []
    for path in sorted(glob.glob(pattern)):
        with np.load(path) as d:
            parts.append((d["x"].astype(np.float64), d["lengths"], d["y"]))
    return tuple(np.concatenate(p) for p in zip(*parts))


def page(out: str) -> str:
    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        return f.read()


class Tags(html.parser.HTMLParser):
    """Every start tag and its attributes."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def tags_of(text: str) -> list[tuple[str, dict[str, str]]]:
    parser = Tags()
    parser.feed(text)
    return parser.tags


def test_page_shows_the_run(sample_run):
    text = page(sample_run)
    m = manifest(sample_run)
    assert f"<code>{esc('python -m beam_pipeline ' + shlex.join(m['command']))}</code>" in text
    for split in ("train", "eval"):
        s = m["splits"][split]
        assert f"{split}: {s['examples_written']:,} examples written" in text
        assert s["shards"][0]["file"] in text
    shard = m["splits"]["train"]["shards"][0]["file"]
    assert f"{os.path.getsize(os.path.join(sample_run, shard)):,}" in text
    assert "<h3>Timings per phase (s)</h3>" in text
    for phase in ("scan", "analyze", "write", "job", "total"):
        assert f"<td>{phase}</td>" in text, phase
    assert text.count("histogram of x[") == 8                  # every channel plotted
    assert "length histograms" in text and "samples per class" in text
    assert "train mean" in text and "JSD" in text


def test_the_figures_on_the_page_are_the_runs_statistics_of_the_data(sample_data, sample_run):
    """The statistics the run wrote reach the page: each channel's mean, std, min and max per
    split, the lengths and the label counts, against NumPy float64 on the input files."""
    text = page(sample_run)
    splits = {"train": read_ragged(os.path.join(sample_data, "train-0*.npz")),
              "eval": read_ragged(os.path.join(sample_data, "test-*.npz"))}

    def cells(*values: float) -> str:
        return "".join(f'<td class="n">{v:.4g}</td>' for v in values)

    for c in range(8):
        row = f"<td>x[{c}]</td>" + "".join(cells(x[:, c].mean(), x[:, c].std(), x[:, c].min(), x[:, c].max())
                                           for x, _, _ in splits.values())
        assert row in text, row
    for split, (_, lengths, _) in splits.items():
        assert f"<td>{split}</td>" + cells(lengths.min(), lengths.mean(), lengths.max()) in text, split
    (_, _, train_y), (_, _, eval_y) = splits.values()
    for label in range(3):
        row = f'<td class="n">{label}</td><td>{label}</td>' + cells(np.sum(train_y == label), np.sum(eval_y == label))
        assert row in text, row


def test_quarantine_lists_reasons_with_file_and_message(sample_run):
    text = page(sample_run)
    records = [json.loads(line) for line in open(os.path.join(sample_run, "quarantine", "quarantine.jsonl"))]
    assert len(records) == 1
    reason = records[0]["reason"]
    assert f"<h3>{reason}: first 1 of 1</h3>" in text
    assert esc(records[0]["message"][:report_page.MAX_MESSAGE_CHARS]) in text


def test_data_is_escaped(sample_run):
    text = page(sample_run)
    assert 'onerror="alert(1)"' not in text and "<img src=x" not in text
    assert esc(HOSTILE) in text
    assert not [t for t, _ in tags_of(text) if t in ("script", "iframe", "object", "embed", "link", "base")]


def test_page_references_nothing_outside_itself(sample_run):
    text = page(sample_run)
    tags = tags_of(text)
    for tag, attrs in tags:
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), f"<{tag} {name}={value[:80]!r}>"
    assert "http://" not in text and "https://" not in text and "url(" not in text
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]


def test_version_1_manifest_renders_what_it_recorded(sample_run, tmp_path):
    """A version 1 output (before shard lengths, buckets, padding, drift and timings): the
    page shows what it has and says "not recorded" for the rest."""
    out = tmp_path / "old"
    shutil.copytree(sample_run, out)
    (out / "manifest.json").write_text(json.dumps(as_version_1(manifest(str(out)))))
    for stats in glob.glob(str(out / "stats" / "*")):
        os.remove(stats)
    text = page(os.path.dirname(report_page.write_report(str(out))))
    for section in ("Timings per phase", "Per-channel statistics (stats/*.pb)", "Length histograms"):
        assert f"{section}: not recorded" in text
    assert "drift: not recorded" in text and "Length buckets: not recorded" in text
    assert "<h3>Counts per split</h3>" in text and "Command: <code>python -m beam_pipeline --input" in text


def test_missing_manifest_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_page.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "manifest.json not found: not a preprocessing output directory" in capsys.readouterr().err


def synthetic_run(out: str, channels: int, shifted: int, quarantined: int, per_element: bool = False) -> None:
    """An output directory with many channels (one shifted in eval), a long quarantine file
    and the manifest fields the pipeline is about to record (timings, padding, drift)."""
    rng = np.random.default_rng(5)
    spec = DatasetSpec((channels,), "float32", 8, label_kind="string", per_element=per_element)
    names = np.array([b"cat", b"dog"], dtype=object)
    stats = {}
    for split in ("train", "eval"):
        values = rng.normal(size=(400 * 8, channels)).astype(np.float32)
        if split == "eval":
            values[:, shifted] += 1.0
        batch = SampleBatch("", np.arange(400), values, np.full(400, 8, dtype=np.int64), names[rng.integers(0, 2, 400)])
        acc = StatsAccumulator.create(spec)
        acc.add(batch)
        stats[split] = acc.to_proto()
        feature_stats.write_stats(feature_stats.stats_path(out, split), split, stats[split])
    x = ValueStatistics("element" if per_element else "channel", "zscore", np.zeros((8, channels)).tolist(),
                        np.ones((8, channels)).tolist(), [], [], 3200)
    counts = SplitSummary(1, 1, 0, 400, 400, 0, 0, (Shard("data/train-00000-of-00001.tfrecord", 400, 8),))
    m = Manifest(created="", command=["--input", "x"], spec=spec, compression="none", max_length=8, num_classes=2,
                 label_vocabulary=["cat", "dog"], features={}, statistics=Statistics(x, {}, 8),
                 splits={"train": counts, "eval": counts}, quarantine=QuarantineSummary("", quarantined, {}),
                 inputs=(), timings={"scan": 1.5, "analyze": 12.25, "write": 30.0, "job": 40.0, "total": 43.75},
                 padding={"train": Padding(900, 1000, 0.1, {})}, drift=drift.compare(stats["train"], stats["eval"]))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write(m.dumps())
    os.makedirs(os.path.join(out, "quarantine"))
    with open(os.path.join(out, "quarantine", "quarantine.jsonl"), "w") as f:
        for i in range(quarantined):
            f.write(json.dumps({"file": f"f{i}.npz", "split": "train", "sample_index": i, "reason": f"r{i % 3}",
                                "message": "x" * 5000, "samples": 1}) + "\n")


def test_large_runs_give_a_bounded_page(tmp_path):
    channels = 300
    synthetic_run(str(tmp_path), channels=channels, shifted=250, quarantined=20_000)
    text = page(os.path.dirname(report_page.write_report(str(tmp_path))))
    assert len(text.encode()) < 3_000_000, len(text.encode())
    plots = [a["alt"] for t, a in tags_of(text) if t == "img" and a["alt"].startswith("histogram of")]
    assert len(plots) == report_page.MAX_CHANNEL_PLOTS
    assert plots[0] == "histogram of x[250]"   # the drifted channel comes first
    assert text.count("<td>x[") == report_page.MAX_TABLE_ROWS
    assert f"... and {channels - report_page.MAX_TABLE_ROWS} more channels" in text
    for reason in ("r0", "r1", "r2"):
        count = len(range(int(reason[1]), 20_000, 3))
        assert f"<h3>{reason}: first {report_page.QUARANTINE_EXAMPLES} of {count:,}</h3>" in text
    assert "x" * (report_page.MAX_MESSAGE_CHARS + 1) not in text


def test_recorded_timings_padding_drift_and_per_element_statistics_are_shown(tmp_path):
    synthetic_run(str(tmp_path), channels=4, shifted=2, quarantined=0, per_element=True)
    text = page(os.path.dirname(report_page.write_report(str(tmp_path))))
    assert "<td>analyze</td><td class=\"n\">12.25</td>" in text and "<td>total</td><td class=\"n\">43.75</td>" in text
    assert '<td class="n">0.1</td><td class="n">1,000</td><td class="n">900</td>' in text
    assert "drift: 1 of 6 features flagged: x[2]" in text and "(recorded by the run)" in text
    assert "Length buckets: none" in text
    assert 'alt="per-element mean and std"' in text
    assert '<td class="n">0</td><td>cat</td>' in text and '<td class="n">1</td><td>dog</td>' in text   # vocabulary ids


def chromium() -> str:
    """Debian's Chromium. Missing: a loud skip on a workstation, a failure under CI."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed (apt-get install chromium): the browser test cannot run"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# Flags that keep Chromium itself off the network; every page request is also intercepted.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND"]


def open_offline(path: str, screenshot: str) -> tuple[list[str], list[dict]]:
    """Opens a file in headless Chromium with every non-local request recorded and refused;
    returns the URLs requested and each image's natural and rendered size."""
    requested: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page_ = browser.new_page(viewport={"width": 1280, "height": 900})

            def route(r):
                requested.append(r.request.url)
                if r.request.url.startswith(ALLOWED_SCHEMES):
                    r.continue_()
                else:
                    r.abort()

            page_.route("**/*", route)
            page_.goto("file://" + path, wait_until="load")
            images = page_.evaluate("""[...document.images].map(i => ({alt: i.alt, complete: i.complete,
                natural: i.naturalWidth * i.naturalHeight,
                shown: i.getBoundingClientRect().width * i.getBoundingClientRect().height}))""")
            page_.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    return requested, images


def test_renders_in_headless_chromium_with_plots_and_no_fetch(sample_run, tmp_path):
    path = os.path.join(sample_run, "report.html")
    requested, images = open_offline(path, str(tmp_path / "shot.png"))
    assert [u for u in requested if not u.startswith("data:")] == ["file://" + path]
    assert len(images) == 8 + 2   # 8 channels, lengths, labels
    for image in images:
        assert image["complete"] and image["natural"] > 0 and image["shown"] > 10_000, image
    assert os.path.getsize(tmp_path / "shot.png") > 50_000


def test_the_offline_check_sees_a_fetch_when_there_is_one(sample_run, tmp_path):
    """The check above can fail: the same report with a remote image (and no CSP to block
    it first) shows the request."""
    text = page(sample_run).replace('<meta http-equiv="Content-Security-Policy"', '<meta name="x"')
    path = tmp_path / "leaky.html"
    path.write_text(text.replace("<h2>Checks</h2>", '<img src="http://example.com/pixel.png"><h2>Checks</h2>'))
    requested, images = open_offline(str(path), str(tmp_path / "shot.png"))
    assert "http://example.com/pixel.png" in requested
    assert any(i["natural"] == 0 for i in images)


def test_length_buckets_are_a_table(sample_run, tmp_path):
    out = str(shutil.copytree(sample_run, tmp_path / "out"))
    m = manifest(out)
    bucket = {"length": 200, "examples": 30, "shards": 2, "padding_fraction": 0.25}
    m["length_buckets"] = {"bounds": [200, 460], "splits": {
        "train": [bucket, {"length": 460, "examples": 7, "shards": 1, "padding_fraction": 0.5}],
        "eval": [{**bucket, "examples": 11}, {"length": 460, "examples": 3, "shards": 1, "padding_fraction": 0.125}]}}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(m, f)
    text = page(os.path.dirname(report_page.write_report(out)))
    assert "<th>bound (steps)</th><th>train examples</th><th>train shards</th><th>train padding</th>" in text
    cells = "".join(f'<td class="n">{v}</td>' for v in (460, 7, 1, 0.5, 3, 1, 0.125))
    assert f"<tr>{cells}</tr>" in text
    assert '{"bounds"' not in text


def test_schema_and_a_drift_anomaly_are_shown(tmp_path):
    data, out = tmp_path / "data", str(tmp_path / "out")
    write_dataset(str(data))
    shift_eval_channel(str(data), 5)
    run_ok("--input", str(data / "train-*.npz"), "--eval_input", str(data / "test-*.npz"), "--output_dir", out)
    text = page(out)
    assert "anomalies (eval against the train schema, stats/anomalies.pbtxt): 1: x[5]@train_bins" in text
    assert ("<tr><td>x[5]@train_bins</td><td>High approximate Jensen-Shannon divergence between "
            "current and previous</td>") in text
    assert "<tr><td>x[3]</td><td>FLOAT</td><td>not required</td>" in text
    assert "<td>label</td><td>INT</td><td>min_count 1, min_fraction 1</td><td>shape [1]</td><td>categorical int</td>" \
        in text
