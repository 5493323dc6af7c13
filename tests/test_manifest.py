"""The typed manifest: what the pipeline writes reads back equal; version 1 outputs load;
a manifest of an unknown version is refused by every reader with a clear message."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import as_version_1, manifest, run_ok
from transforms.manifest import FORMAT_VERSION, Manifest, ManifestVersionError, Shard, loads


@pytest.fixture(scope="module")
def bucketed_run(tmp_path_factory) -> str:
    data = tmp_path_factory.mktemp("data")
    write_dataset(str(data))
    out = str(tmp_path_factory.mktemp("run") / "out")
    run_ok("--input", str(data / "train-*.npz"), "--eval_input", str(data / "test-*.npz"), "--output_dir", out,
           "--length_buckets", "2")
    return out


def test_written_manifest_reads_back_to_the_same_json(bucketed_run):
    written = manifest(bucketed_run)
    m = Manifest.from_json(written)
    assert m.format_version == FORMAT_VERSION == written["format_version"]
    assert json.loads(m.dumps()) == written
    assert m.length_buckets is not None and len(m.length_buckets.bounds) == 2
    assert {m.shard_length(s) for s in m.splits["train"].shards} == set(m.length_buckets.bounds)
    assert m.drift is not None and m.timings is not None and set(m.padding) == {"train", "eval"}


def test_version_1_loads_with_the_fields_it_lacked_as_none(bucketed_run):
    m = Manifest.from_json(as_version_1(manifest(bucketed_run)))
    assert (m.length_buckets, m.padding, m.drift, m.timings) == (None, None, None, None)
    shard = m.splits["train"].shards[0]
    assert shard.length is None and m.shard_length(shard) == m.max_length
    assert m.shard_length(Shard("f", 1, 3)) == 3


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, None, "2"])
def test_an_unknown_version_is_refused_clearly(bucketed_run, version):
    data = manifest(bucketed_run)
    data["format_version"] = version
    with pytest.raises(ManifestVersionError, match="newer version of the pipeline; upgrade"):
        loads(json.dumps(data))


def test_the_trainer_and_the_report_refuse_a_future_manifest(bucketed_run, tmp_path):
    out = tmp_path / "future"
    shutil.copytree(bucketed_run, out)
    data = manifest(str(out))
    data["format_version"] = FORMAT_VERSION + 1
    (out / "manifest.json").write_text(json.dumps(data))
    from trainer import data as trainer_data
    from trainer.errors import DataError

    with pytest.raises(DataError, match=f"format_version {FORMAT_VERSION + 1}"):
        trainer_data.load(str(out))
    from beam_pipeline.report import page

    with pytest.raises(ManifestVersionError):
        page.write_report(str(out))
    assert os.path.exists(out / "_SUCCESS")
