#!/usr/bin/env bash
# The README's first command: install dependencies, build, fetch the data, run the main job.
# Each step prints what it does; run the steps by hand to see them one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== 1/4 installing dependencies (Debian packages)"
scripts/install-deps.sh
echo "== 2/4 building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
echo "== 3/4 fetching MNIST and Fashion-MNIST into ./data"
build/trainbench data fetch mnist --data-dir data
build/trainbench data fetch fashion-mnist --data-dir data
echo "== 4/4 the main job: the default comparison study"
build/trainbench bench --data-dir data --results results.jsonl --report report.html
