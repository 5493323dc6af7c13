#!/usr/bin/env bash
# Runs the whole workflow end to end on a small seeded sample dataset, from a fresh clone:
# preprocess -> train -> validate -> publish, orchestrated by kfp's local runner (python -m workflow;
# see docs/workflow.md). A second run with nothing changed is served from the cache in seconds.
# Creates .venv if missing and installs the project into it (pinned stack, see constraints.txt).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import beam_pipeline, tensorflow_transform, kfp, workflow" >/dev/null 2>&1; then
  echo "== installing the project into .venv (first run: a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e ".[dev]"
fi

DATA=${DATA:-sample_data}
ROOT=${ROOT:-workflow_runs}
PUBLISHED=${PUBLISHED:-published}
echo "== generating sample data in $DATA/ (the same bytes every time: a rerun stays cached)"
.venv/bin/python -m beam_pipeline.sample_data --out "$DATA"

echo "== workflow: $DATA/ -> $ROOT/ (steps, cache) -> $PUBLISHED/ (the served model)"
.venv/bin/python -m workflow run \
  --input "$DATA/train-*.npz" --eval_input "$DATA/test-*.npz" \
  --root "$ROOT" --publish_dir "$PUBLISHED" --epochs 3 --batch_size 32 --min_accuracy 0.5

echo "== published model: $PUBLISHED/current/serving -> $(readlink "$PUBLISHED/current")"
echo "== its metrics ($PUBLISHED/current/metrics.json)"
cat "$PUBLISHED/current/metrics.json"
echo "== what its data looked like (open in any browser, offline): $PWD/$PUBLISHED/current/report.html"
