"""Planning on the launcher: work units and shards, deterministic and balanced."""

from beam_pipeline.planning import plan
from beam_pipeline.planning.plan import FileTask
from transforms.features import DatasetSpec

SPEC = DatasetSpec(trailing_shape=(2,), source_dtype="float32", max_length=4)


def _files(*counts: int, split: str = "train") -> list[plan.Unit]:
    return [(FileTask(f"{split}{i}", split, 100), n) for i, n in enumerate(counts)]


def test_shards_balance_samples_and_cut_files_when_asked_for_more_shards():
    work = plan.make_plan({"train": _files(90, 10)}, SPEC, num_shards=4, samples_per_task=20_000,
                          group_bytes=1)
    covered = sorted((t.path, t.sample_range) for s in work.shards for t in s.tasks)
    assert covered == [("train0", (0, 22)), ("train0", (22, 45)), ("train0", (45, 67)), ("train0", (67, 90)),
                       ("train1", None)]
    assert [s.file_name("gzip") for s in work.shards][0] == "train-00000-of-00004.tfrecord.gz"
    # The analyze pass keeps whole files: the extra cuts only serve the shard count.
    assert [[(t.path, t.sample_range) for t in g] for g in work.analysis] == [[("train0", None)], [("train1", None)]]


def test_large_files_become_sample_ranges_for_both_passes():
    work = plan.make_plan({"train": _files(50, 7), "eval": _files(3, split="eval")}, SPEC, num_shards=0,
                          samples_per_task=20, group_bytes=1)
    analysis = [t for group in work.analysis for t in group]
    assert sorted(t.sample_range for t in analysis if t.path == "train0") == [(0, 16), (16, 33), (33, 50)]
    assert {s.split: s.count for s in work.shards} == {"train": 1, "eval": 1}   # tiny data: one shard each
    train_tasks = [t for s in work.shards if s.split == "train" for t in s.tasks]
    assert sorted(train_tasks, key=str) == sorted(analysis, key=str)
    assert [t.path for s in work.shards if s.split == "eval" for t in s.tasks] == ["eval0"]


def test_auto_shards_are_about_150_mb_and_never_more_than_the_units():
    big = DatasetSpec(trailing_shape=(1000,), source_dtype="float32", max_length=1000)   # 4 MB per record
    assert plan.auto_num_shards(1000, big, num_units=100) == 26          # 4.0 GB / 150 MiB
    assert plan.auto_num_shards(1000, big, num_units=5) == 5
    assert plan.auto_num_shards(0, big, num_units=5) == 1


def test_small_files_are_read_in_groups_in_plan_order():
    files = [(FileTask(f"f{i}", "train", size), 1) for i, size in enumerate((30, 30, 50, 10, 5))]
    work = plan.make_plan({"train": files}, SPEC, num_shards=1, samples_per_task=100, group_bytes=60)
    assert [[t.path for t in g] for g in work.analysis] == [["f0", "f1"], ["f2", "f3"], ["f4"]]
