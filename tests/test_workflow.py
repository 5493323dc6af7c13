"""The workflow (python -m workflow): kfp's real local runner, the real CLIs, small data.

One workspace goes through a sequence of runs, each a fixture that needs the one before:
first run (everything runs, a model is published) -> unchanged rerun (served from cache) ->
a failing step (nothing published changes) -> one input file changed (preprocess and all after
it rerun) -> a worse model (not published). Then the compiled YAML, and the pieces on their own:
content fingerprints, code versions, the validation rule, atomic publishing (local and through
Beam's FileSystems, as on gs://).
"""

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from beam_pipeline.sample_data import write_dataset
from tests.support.helpers import REPO
from trainer.outputs import TrainMetrics
from workflow import fingerprint, publish, steps, storage

STEPS = ["fingerprint", "preprocess", "train", "validate", "publish"]


def run_workflow(ws, *flags: str, expect: int = 0) -> dict:
    """Runs `python -m workflow run` on the workspace as a user would; returns ROOT/last_run.json."""
    command = [sys.executable, "-m", "workflow", "run", "--input", str(ws / "data" / "train-*.npz"),
               "--eval_input", str(ws / "data" / "test-*.npz"), "--root", str(ws / "runs"),
               "--publish_dir", str(ws / "published"), "--epochs", "2", "--batch_size", "32", *flags]
    proc = subprocess.run(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    with open(ws / "runs" / "last_run.json") as f:
        return {**json.load(f), "stdout": proc.stdout, "stderr": proc.stderr}


def statuses(summary: dict) -> dict[str, str]:
    return {step: s["status"] for step, s in summary["steps"].items()}


def pointer(ws) -> dict:
    with open(ws / "published" / publish.POINTER) as f:
        return json.load(f)


def executions(ws, step: str) -> list[str]:
    """The run directories in which kfp actually executed the step."""
    return sorted(glob.glob(str(ws / "runs" / "npy-tft-workflow-*" / step)))


def published_inputs(ws, version_path: str) -> dict[str, str]:
    """sha256 by file name of the inputs in a published version's data manifest."""
    with open(ws / "published" / version_path / "manifest.json") as f:
        return {os.path.basename(i["path"]): i["sha256"] for i in json.load(f)["inputs"]}


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("workflow")
    write_dataset(str(root / "data"))   # 4 train + 2 eval files of 64 sequences, 3 classes
    return root


@pytest.fixture(scope="module")
def first(ws):
    return run_workflow(ws), pointer(ws)


@pytest.fixture(scope="module")
def rerun(ws, first):
    return run_workflow(ws)


@pytest.fixture(scope="module")
def failed(ws, rerun):
    return run_workflow(ws, "--preprocess_arg=--num_shards=-1", expect=1)   # the pipeline CLI refuses it


@pytest.fixture(scope="module")
def changed(ws, failed):
    """One training file rewritten with other samples; max_regression lets its model out whatever it scores."""
    write_dataset(str(ws / "other"), seed=7)
    shutil.copy(ws / "other" / "train-00001.npz", ws / "data" / "train-00001.npz")
    return run_workflow(ws, "--max_regression=1")


@pytest.fixture(scope="module")
def worse(ws, changed):
    before = pointer(ws)
    return run_workflow(ws, "--train_arg=--learning_rate=1e-9"), before   # a model that stays at its random start


def test_the_first_run_runs_every_step_and_publishes_a_complete_model(ws, first):
    summary, latest = first
    assert statuses(summary) == dict.fromkeys(STEPS, "ran")
    assert summary["steps"]["fingerprint"]["hashed"] == 6
    assert summary["steps"]["publish"]["result"] == "published"
    version = ws / "published" / latest["path"]
    assert os.path.realpath(ws / "published" / "current") == str(version)
    with open(os.path.join(latest["model_uri"], "metrics.json")) as f:
        trained = TrainMetrics.from_json(json.load(f))
    assert latest["metrics"] == {"task": "classification", "train": trained.train, "eval": trained.eval}
    assert published_inputs(ws, latest["path"]) == {os.path.basename(p): sha256(p)
                                                    for p in glob.glob(str(ws / "data" / "*.npz"))}
    with open(version / "publish.json") as f:
        assert json.load(f) == latest
    assert f"published model: {version}/serving" in summary["stdout"]


def output_artifact(ws, step: str, name: str) -> dict:
    """An output artifact of the step's (only) execution, as kfp's executor recorded it."""
    (execution,) = executions(ws, step)
    with open(os.path.join(execution, "executor_output.json")) as f:
        (artifact,) = json.load(f)["artifacts"][name]["artifacts"]
    return artifact


def test_the_report_and_the_metrics_are_typed_artifacts(ws, first):
    summary, latest = first
    report = output_artifact(ws, "preprocess", "report")
    dataset = output_artifact(ws, "preprocess", "dataset")
    with open(report["uri"], "rb") as got, open(os.path.join(dataset["uri"], "report.html"), "rb") as want:
        assert got.read() == want.read()
    with open(os.path.join(latest["model_uri"], "metrics.json")) as f:
        trained = TrainMetrics.from_json(json.load(f))
    assert output_artifact(ws, "train", "metrics")["metadata"] == {
        f"{split}_{name}": figures[name] for split, figures in (("train", trained.train), ("eval", trained.eval))
        for name in ("loss", "accuracy")}
    assert output_artifact(ws, "validate", "metrics")["metadata"] == {
        "approved": 1.0, "eval_accuracy": trained.eval["accuracy"]}
    for step in ("train", "validate"):   # the figures in the artifact's file too (see the cached rerun)
        artifact = output_artifact(ws, step, "metrics")
        with open(artifact["uri"]) as f:
            assert json.load(f) == artifact["metadata"]


def test_the_published_model_loads_and_serves_raw_examples(ws, first):
    import tensorflow as tf

    served = tf.saved_model.load(str(ws / "published" / "current" / "serving")).signatures["serving_default"]
    with np.load(ws / "data" / "test-00000.npz") as f:
        x, lengths = f["x"], f["lengths"]
    examples = [tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=x[start:start + n].ravel())),
        "length": tf.train.Feature(int64_list=tf.train.Int64List(value=[n]))})).SerializeToString()
        for start, n in zip(np.cumsum(lengths)[:4] - lengths[:4], lengths[:4])]
    probabilities = served(examples=tf.constant(examples))["probabilities"].numpy()
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_an_unchanged_rerun_is_served_from_the_cache(ws, first, rerun):
    assert statuses(rerun) == {"fingerprint": "ran", "preprocess": "cached", "train": "cached",
                               "validate": "ran", "publish": "ran"}
    assert (rerun["steps"]["fingerprint"]["hashed"], rerun["steps"]["fingerprint"]["reused"]) == (0, 6)
    assert "already the published model" in rerun["steps"]["validate"]["reason"]
    assert rerun["steps"]["publish"]["result"] == "up to date"
    assert pointer(ws) == first[1]
    assert len(executions(ws, "preprocess")) == len(executions(ws, "train")) == 1   # neither ran again


def test_a_failed_step_leaves_the_published_model_and_the_cached_outputs_in_place(ws, first, failed):
    # The step's CLI said why, and the workflow says it again in its last line, without a traceback.
    assert failed["status"] == "failed" and failed["error"] == "step preprocess: --num_shards must be >= 0"
    assert failed["stderr"].strip().splitlines()[-1] == f"error: the workflow failed: {failed['error']}"
    assert "Traceback" not in failed["stdout"] + failed["stderr"]
    assert statuses(failed)["fingerprint"] == "ran"
    assert statuses(failed)["preprocess"] == "not completed"
    assert pointer(ws) == first[1]
    assert os.path.realpath(ws / "published" / "current") == str(ws / "published" / first[1]["path"])
    assert os.path.exists(os.path.join(first[1]["dataset_uri"], "_SUCCESS"))


def test_changing_one_input_file_reruns_preprocess_and_everything_after_it(ws, first, changed):
    assert statuses(changed) == dict.fromkeys(STEPS, "ran")
    assert (changed["steps"]["fingerprint"]["hashed"], changed["steps"]["fingerprint"]["reused"]) == (1, 5)
    latest = pointer(ws)
    assert latest["previous_version"] == first[1]["version"]
    assert latest["model_uri"] != first[1]["model_uri"] and latest["dataset_uri"] != first[1]["dataset_uri"]
    old, new = (published_inputs(ws, v["path"]) for v in (first[1], latest))
    assert new["train-00001.npz"] == sha256(ws / "data" / "train-00001.npz") != old["train-00001.npz"]
    assert {k: v for k, v in new.items() if k != "train-00001.npz"} == \
        {k: v for k, v in old.items() if k != "train-00001.npz"}
    assert os.path.isdir(ws / "published" / first[1]["path"] / "serving")   # the old version stays


def test_a_worse_model_is_not_published(ws, worse):
    summary, before = worse
    assert statuses(summary) == {"fingerprint": "ran", "preprocess": "cached", "train": "ran",
                                 "validate": "ran", "publish": "skipped"}
    assert summary["steps"]["validate"]["approved"] is False
    assert "worse than the published version" in summary["steps"]["validate"]["reason"]
    assert summary["steps"]["train"]["eval"]["accuracy"] < before["metrics"]["eval"]["accuracy"]
    assert pointer(ws) == before
    assert os.path.realpath(ws / "published" / "current") == str(ws / "published" / before["path"])


def test_the_compiled_pipeline_loads_with_its_parameters_and_caching(tmp_path):
    out = tmp_path / "workflow.yaml"
    proc = subprocess.run([sys.executable, "-m", "workflow", "compile", "--image", "example.invalid/npy-tft:test",
                           "--output", str(out), "--train_accelerator_type", "NVIDIA_L4"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from kfp import components

    assert components.load_component_from_file(str(out)).name == "npy-tft-workflow"
    with open(out) as f:
        spec = yaml.safe_load(f)
    assert {"runner", "project", "region", "bucket", "input_globs", "eval_globs", "publish_dir", "max_mae"} <= set(
        spec["root"]["inputDefinitions"]["parameters"])
    tasks = spec["root"]["dag"]["tasks"]
    cached = {name for name, t in tasks.items() if t.get("cachingOptions", {}).get("enableCache")}
    assert cached == {"preprocess", "train"}
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"example.invalid/npy-tft:test"}
    assert executors["exec-train"]["container"]["resources"]["accelerator"]["resourceType"] == "NVIDIA_L4"
    outputs = {name: {k: v["artifactType"]["schemaTitle"] for k, v in c.get("outputDefinitions", {}).get(
        "artifacts", {}).items()} for name, c in spec["components"].items()}
    assert outputs["comp-preprocess"] == {"dataset": "system.Dataset", "report": "system.HTML"}
    assert outputs["comp-train"] == {"model": "system.Model", "metrics": "system.Metrics"}
    assert outputs["comp-validate"] == {"metrics": "system.Metrics"}


def test_a_glob_that_matches_nothing_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "workflow", "run", "--input", str(tmp_path / "none-*.npz"),
                           "--eval_input", str(tmp_path / "none-*.npz"), "--root", str(tmp_path / "runs")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no file matches" in proc.stderr
    assert not os.path.exists(tmp_path / "runs")


@pytest.mark.parametrize("argv, flag, meant", [
    (["run", "--input", "x", "--eval_input", "y", "--publish_di", "p"], "--publish_di", "--publish_dir"),
    (["run", "--input", "x", "--eval_input", "y", "--epoch", "3"], "--epoch", "--epochs"),
    (["run", "--inputs", "x", "--eval_input", "y"], "--inputs", "--input"),
    (["compile", "--imag", "i"], "--imag", "--image")])
def test_a_flag_the_workflow_does_not_have_is_refused_with_the_closest_one(argv, flag, meant, tmp_path, capsys):
    from workflow import cli

    with pytest.raises(SystemExit) as exit_:
        cli.run([*argv, "--root", str(tmp_path / "runs")] if argv[0] == "run" else argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"python -m workflow {argv[0]}: error: unknown flag: {flag} (did you mean {meant}?); see --help"
    assert not (tmp_path / "runs").exists()


def test_the_fingerprint_follows_content_and_trusts_unchanged_size_and_mtime(tmp_path):
    for name, data in (("a.npy", b"aaaa"), ("b.npy", b"bbbb")):
        (tmp_path / name).write_bytes(data)
    splits, cache = {"train": [str(tmp_path / "*.npy")]}, str(tmp_path / "stat.json")
    first = fingerprint.data_fingerprint(splits, cache)
    assert (first.files, first.hashed, first.reused) == (2, 2, 0)
    again = fingerprint.data_fingerprint(splits, cache)
    assert (again.key, again.hashed, again.reused) == (first.key, 0, 2)
    os.utime(tmp_path / "a.npy", ns=(1, 1))   # touched, same bytes: read again, same key
    touched = fingerprint.data_fingerprint(splits, cache)
    assert (touched.key, touched.hashed) == (first.key, 1)
    (tmp_path / "b.npy").write_bytes(b"BBBB")
    changed = fingerprint.data_fingerprint(splits, cache)
    assert changed.key != first.key
    # The documented trade-off: same size and mtime means the remembered hash is used, unread.
    entries = storage.read_json(cache)
    entries[str(tmp_path / "b.npy")]["sha256"] = "0" * 64
    storage.write_json(cache, entries)
    stale = fingerprint.data_fingerprint(splits, cache)
    assert (stale.hashed, stale.reused) == (0, 2) and stale.key != changed.key
    # Without a stat cache every file is read: the key is the content's, whatever a cache says.
    fresh = fingerprint.data_fingerprint(splits, "")
    assert (fresh.key, fresh.hashed, fresh.reused) == (changed.key, 2, 0)


def test_the_code_version_follows_the_sources_only(tmp_path, monkeypatch):
    package = tmp_path / "some_step_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "core.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = fingerprint.code_version(["some_step_pkg"])
    (package / "NOTES.md").write_text("not code")
    assert fingerprint.code_version(["some_step_pkg"]) == before
    (package / "core.py").write_text("X = 2\n")
    assert fingerprint.code_version(["some_step_pkg"]) != before


@pytest.mark.parametrize("packages, code", [(["beam_pipeline"], steps.PREPROCESS_CODE),
                                            (["trainer"], steps.TRAIN_CODE)])
def test_a_step_code_version_covers_every_project_module_its_code_imports(packages, code):
    """A module a step runs that its code version leaves out (a package missing from the list)
    would let an edit to it go unseen: the step would be served a stale cached result."""
    proc = subprocess.run([sys.executable, "-m", "tests.support.project_imports", *packages], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = set(proc.stdout.split())
    assert any(path.endswith(os.path.join("cli_support", "console.py")) for path in loaded)   # the listing works
    covered = {os.path.realpath(path) for module in code for path, _ in fingerprint.source_files(module)}
    assert sorted(loaded - covered) == []


def _metrics(eval_figures: dict[str, float] | None, task: str = "classification") -> TrainMetrics:
    """A trainer's metrics.json with the given eval figures (run facts are placeholders)."""
    return TrainMetrics(train={}, validation=None, eval=eval_figures, task=task, num_classes=None, model="m",
                        serving_dir="serving", epochs=1, epochs_run=1, first_epoch=1, best_epoch=None,
                        steps_per_epoch=1, global_batch_size=1, length_buckets=[1], examples={"train": 1},
                        strategy="default", num_replicas=1, jit_compile=False, mixed_precision=None, data_dir="d",
                        train_seconds=1.0, epoch_seconds=[1.0])


@pytest.mark.parametrize("figures, current, approved, reason", [
    ({"accuracy": 0.9}, None, True, "nothing published yet"),
    ({"accuracy": 0.4}, None, False, "below the threshold"),
    ({"accuracy": float("nan")}, None, False, "is NaN"),
    (None, None, False, "no eval metrics"),
    ({"accuracy": 0.8}, "0.9", False, "worse than the published version"),
    ({"accuracy": 0.86}, "0.9", True, "against published"),   # within max_regression 0.05
    ({"accuracy": 0.95}, "0.9", True, "against published"),
])
def test_validation_needs_the_threshold_and_no_regression(figures, current, approved, reason):
    published = None if current is None else {"version": "v1", "model_uri": "old",
                                               "metrics": {"eval": {"accuracy": float(current)}}}
    decision = publish.decide("new", _metrics(figures), published, min_accuracy=0.5, max_regression=0.05)
    assert decision.approved is approved and reason in decision.reason


@pytest.mark.parametrize("mae, current, approved, reason", [
    (0.3, None, True, "nothing published yet"),          # min_accuracy does not apply to a regression
    (0.7, None, False, "above the threshold 0.5"),
    (float("nan"), None, False, "is NaN"),
    (0.33, 0.3, True, "against published"),              # within 10% of the published MAE
    (0.34, 0.3, False, "worse than the published version"),
    (0.34, "classification", True, "of another task"),   # an accuracy is not an MAE
])
def test_a_regression_model_is_judged_by_its_mean_absolute_error(mae, current, approved, reason):
    if current == "classification":
        published = {"version": "v1", "model_uri": "old", "metrics": {"eval": {"accuracy": 0.9}}}
    else:
        published = current and {"version": "v1", "model_uri": "old",
                                  "metrics": {"task": "regression", "eval": {"loss": 0.1, "mae": current}}}
    decision = publish.decide("new", _metrics({"loss": 0.2, "mae": mae}, "regression"), published,
                              min_accuracy=0.99, max_regression=0.1, max_mae=0.5)
    assert decision.approved is approved and reason in decision.reason


def test_the_same_model_is_already_published_whatever_its_score():
    published = {"version": "v1", "model_uri": "m", "metrics": {"eval": {"accuracy": 0.9}}}
    decision = publish.decide("m", _metrics({"accuracy": 0.1}), published, min_accuracy=0.5, max_regression=0.0)
    assert decision.approved and "already the published model" in decision.reason


def _fake_run(folder, accuracy: float):
    """A model directory and a dataset directory as the two CLIs leave them (no TensorFlow needed)."""
    (folder / "model" / "serving" / "variables").mkdir(parents=True)
    (folder / "model" / "serving" / "saved_model.pb").write_bytes(os.urandom(64))
    (folder / "model" / "serving" / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(64))
    (folder / "model" / "metrics.json").write_text(_metrics({"accuracy": accuracy}).dumps())
    (folder / "data").mkdir()
    (folder / "data" / "manifest.json").write_text(json.dumps({"inputs": [], "accuracy": accuracy}))
    (folder / "data" / "report.html").write_text(f"<p>data of the {accuracy} model</p>")
    return str(folder / "model"), str(folder / "data")


def test_a_failed_publish_changes_nothing_and_the_next_one_switches_atomically(tmp_path):
    dest = tmp_path / "published"
    model, data = _fake_run(tmp_path / "a", 0.9)
    v1 = publish.publish(model, model, data, data, str(dest), "key-a")
    broken = tmp_path / "b"
    model_b, data_b = _fake_run(broken, 0.95)
    shutil.rmtree(os.path.join(model_b, "serving"))
    with pytest.raises(FileNotFoundError):
        publish.publish(model_b, model_b, data_b, data_b, str(dest), "key-b")
    assert pointer(tmp_path)["version"] == v1
    assert os.listdir(dest / "versions") == [v1]   # no staging directory left behind
    model_c, data_c = _fake_run(tmp_path / "c", 0.95)
    v3 = publish.publish(model_c, model_c, data_c, data_c, str(dest), "key-c")
    assert pointer(tmp_path)["previous_version"] == v1 and pointer(tmp_path)["version"] == v3
    assert os.readlink(dest / "current") == os.path.join("versions", v3)
    assert sorted(os.listdir(dest / "versions")) == sorted([v1, v3])
    assert (dest / "versions" / v3 / "serving" / "saved_model.pb").read_bytes() == \
        (tmp_path / "c" / "model" / "serving" / "saved_model.pb").read_bytes()


def test_publishing_to_a_remote_store_goes_through_beam_filesystems(tmp_path):
    from tests.support import gfile_fs  # noqa: F401 - registers ram:// (TensorFlow's in-memory filesystem) with Beam

    model, data = _fake_run(tmp_path, 0.9)
    dest = f"ram://published-{os.getpid()}"
    version = publish.publish(model, model, data, data, dest, "key")
    latest = storage.read_json(f"{dest}/LATEST.json")
    assert latest["version"] == version and latest["path"] == f"versions/{version}"
    copied = f"{dest}/versions/{version}"
    import tensorflow as tf

    for rel in ("serving/saved_model.pb", "serving/variables/variables.data-00000-of-00001"):
        with tf.io.gfile.GFile(f"{copied}/{rel}", "rb") as f:
            assert f.read() == (tmp_path / "model" / rel).read_bytes()
    assert storage.read_json(f"{copied}/manifest.json") == {"inputs": [], "accuracy": 0.9}
    with tf.io.gfile.GFile(f"{copied}/report.html") as f:
        assert f.read() == "<p>data of the 0.9 model</p>"
    assert publish.publish(model, model, data, data, dest, "key") == version   # up to date: no new version
