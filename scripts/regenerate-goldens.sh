#!/usr/bin/env bash
# Regenerates the golden files under tests/golden/ (docs/golden-tests.md): trainbench writes
# each model's initial weights and one batch, PyTorch computes the logits, loss, gradients
# and 10 steps of SGD and of Adam. Needs a built trainbench and a Python with torch.
#   scripts/regenerate-goldens.sh [BUILD_DIR]     (default: build)
# Environment: TRAINBENCH_PYTHON picks the interpreter (default: the first of python3,
# /usr/bin/python3 that can import torch).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
trainbench="$build/trainbench"
[ -x "$trainbench" ] || { echo "regenerate-goldens: $trainbench not found; build first" >&2; exit 1; }

python=""
for candidate in "${TRAINBENCH_PYTHON:-}" python3 /usr/bin/python3; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c "import torch, numpy" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[ -n "$python" ] || { echo "regenerate-goldens: no Python with torch found; install python3-torch" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Each line: model, input, batch, SGD learning rate, Adam learning rate, Adam epsilon. The
# settings keep ten steps on one batch well conditioned (PyTorch's own float32 run stays
# close to its float64 one): batches large enough for batch norm, rates small enough not to
# memorise the batch in a few steps, and an Adam epsilon above the rounding noise of
# gradients that are zero in exact arithmetic. docs/golden-tests.md explains each choice.
while read -r model input batch sgd_lr adam_lr adam_eps; do
  "$trainbench" golden-export --model "$model" --input "$input" --batch-size "$batch" \
      --seed 7 --steps 10 --samples 64 --sgd-lr "$sgd_lr" --adam-lr "$adam_lr" \
      --adam-eps "$adam_eps" --output "$tmp/$model.input"
  "$python" peers/pytorch/golden.py --input "$tmp/$model.input" \
      --output "tests/golden/$model.golden"
done <<'MODELS'
simple_cnn 1x28x28 4 0.01 0.001 1e-8
cifar_cnn 3x8x8 16 0.001 0.0001 1e-6
resnet18 1x16x16 4 0.0002 0.00002 1e-6
MODELS
echo "regenerate-goldens: done; run the tests: ctest --test-dir $build -R Golden"
