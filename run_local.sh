#!/usr/bin/env bash
# Runs the whole job end to end on a small seeded sample dataset, from a fresh clone.
# Creates .venv if missing and installs the project into it (pinned stack, see constraints.txt).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import beam_pipeline, tensorflow_transform" >/dev/null 2>&1; then
  echo "== installing the project into .venv (first run: a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e ".[dev]"
fi

DATA=${DATA:-sample_data}
OUT=${OUT:-out}
echo "== generating sample data in $DATA/"
.venv/bin/python -m beam_pipeline.sample_data --out "$DATA"

echo "== preprocessing: $DATA/ -> $OUT/"
.venv/bin/python -m beam_pipeline \
  --input "$DATA/train-*.npz" --eval_input "$DATA/test-*.npz" \
  --output_dir "$OUT" --overwrite

echo "== output"
ls -l "$OUT" "$OUT/data"
.venv/bin/python - "$OUT" <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/manifest.json"))
s = m["statistics"]["x"]
print(f"max_length={m['max_length']} num_classes={m['num_classes']} features={ {k: v['shape'] for k, v in m['features'].items()} }")
print("train mean per channel:", [round(v, 3) for v in s["mean"]])
print("train std  per channel:", [round(v, 3) for v in s["std"]])
PY

MODEL=${MODEL:-model}
echo "== training: $OUT/ -> $MODEL/ (a short run; see docs/training.md)"
.venv/bin/python -m trainer --data_dir "$OUT" --model_dir "$MODEL" --epochs 3 --batch_size 32
echo "== final metrics ($MODEL/metrics.json)"
cat "$MODEL/metrics.json"
