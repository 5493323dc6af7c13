#!/usr/bin/env bash
# Installs the real Beam runners that tests/test_runners.py runs the job on, into a cache outside
# the clone (NPY_TFT_RUNNERS_CACHE, default ~/.cache/npy-tft-runners) that later runs on the same
# machine reuse; Go's module and build caches are reused the same way. Idempotent.
#   usage: .ci/runners.sh PYTHON   (the interpreter whose apache_beam version the runners must match)
set -euo pipefail
PYTHON=${1:?usage: .ci/runners.sh PYTHON}
CACHE=${NPY_TFT_RUNNERS_CACHE:-$HOME/.cache/npy-tft-runners}
BEAM=$("$PYTHON" -c 'from importlib.metadata import version; print(version("apache-beam"))')

# Prism, Beam's Go runner (what DirectRunner runs on where it can download it), built from Beam's
# Go module at the SDK's own version: job server and SDK must not differ.
prism="$CACHE/bin/prism-v$BEAM"
if [ ! -x "$prism" ]; then
  mkdir -p "$CACHE/bin"
  build=$(mktemp -d "$CACHE/bin/build.XXXXXX")
  GOBIN="$build" GOFLAGS=-mod=mod "$(command -v go || echo /usr/local/go/bin/go)" install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM"
  mv "$build/prism" "$prism"   # a rename: an interrupted build never leaves a partial binary
  rmdir "$build"
fi
echo "prism: $prism"
