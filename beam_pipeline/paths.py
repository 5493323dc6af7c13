"""Names of everything a run writes into --output_dir (no heavy imports: the CLI checks the
output directory before TensorFlow loads)."""

DATA_DIR = "data"
WORK_DIR = ".work"            # scratch space, removed when the run completes
QUARANTINE_DIR = "quarantine"
QUARANTINE_FILE = "quarantine.jsonl"
REPORTS_PREFIX = "reports"
MANIFEST = "manifest.json"
SUCCESS = "_SUCCESS"
TRANSFORM_FN_DIR = "transform_fn"
TRANSFORMED_METADATA_DIR = "transformed_metadata"
TFT_TEMP_DIR = "transform_tmp"   # tf.Transform's own scratch directory

# Everything a run may leave in --output_dir: cleared before a run, so stale shards of an
# earlier run can never mix with new ones. Nothing else in the directory is touched.
OUTPUT_ENTRIES = (DATA_DIR, TRANSFORM_FN_DIR, TRANSFORMED_METADATA_DIR, QUARANTINE_DIR, WORK_DIR,
                  TFT_TEMP_DIR, MANIFEST, SUCCESS)
