#!/usr/bin/env bash
# The whole test suite, from a clean clone: install dependencies, build, run every test that
# this machine can run (GPU tests are labelled `gpu` and skipped when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  ctest --test-dir build --output-on-failure
else
  echo "test.sh: no GPU here: skipping tests labelled gpu"
  ctest --test-dir build --output-on-failure --label-exclude gpu
fi
