#!/usr/bin/env bash
# Issue 3's acceptance run on this machine, in one command: training images/s of `cpu`,
# `onednn` and PyTorch (the `cpu` part of torch_anchor.py: same models, batch 64) for
# alexnet_lite, cifar_cnn and resnet18 at 1 thread and at all threads, then the table with
# ratios and the percent of the FMA peak measured at the start. Everything lands in $OUT.
#
#   scripts/cpu_vs_pytorch.sh            (after scripts/quickstart.sh has built build/)
#   OUT=results/cpu TORCH_ANCHOR=path/to/torch_anchor.py scripts/cpu_vs_pytorch.sh
# "All threads" is what the PyTorch script takes it to be: Python's os.cpu_count().
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-cpu-vs-pytorch}
TB=${TB:-build/trainbench}
TORCH_ANCHOR=${TORCH_ANCHOR:-../shared/peers/torch_anchor.py}
PYTHON=${PYTHON:-python3}
[ -x "$TB" ] || { echo "error: $TB not found: build first (scripts/quickstart.sh)" >&2; exit 1; }
[ -f "$TORCH_ANCHOR" ] || { echo "error: the PyTorch script $TORCH_ANCHOR is missing; set TORCH_ANCHOR" >&2; exit 1; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "error: $PYTHON cannot import torch (Debian: apt install python3-torch)" >&2; exit 1; }
THREADS=$("$PYTHON" -c "import os; print(os.cpu_count())")
mkdir -p "$OUT"
rm -f "$OUT/cpu_throughput.jsonl" "$OUT/torch_anchor.jsonl"
echo "== trainbench: cpu and onednn at 1 and $THREADS threads (log: $OUT/cpu_throughput.log)"
"$TB" throughput --model alexnet_lite,cifar_cnn,resnet18 --impl cpu,onednn \
  --threads "1,$THREADS" --batch-size 64 --warmup 2 --repeats 7 --baseline onednn \
  --results "$OUT/cpu_throughput.jsonl" | tee "$OUT/cpu_throughput.log"
# WINOGRAD_FORWARD=1 (the default) adds `cpu` with Winograd F(4x4, 3x3) in the forward too
# (column cpu+wf; src/ops/cpu/conv_winograd.h says why the default forward uses F(2x2, 3x3)).
if [ "${WINOGRAD_FORWARD:-1}" = 1 ]; then
  echo "== trainbench: cpu with TB_CPU_WINOGRAD=all"
  TB_CPU_WINOGRAD=all "$TB" throughput --model alexnet_lite,cifar_cnn,resnet18 --impl cpu \
    --threads "1,$THREADS" --batch-size 64 --warmup 2 --repeats 7 \
    --results "$OUT/cpu_throughput.jsonl" | tee -a "$OUT/cpu_throughput.log"
fi
echo "== PyTorch: the cpu part of $TORCH_ANCHOR (log: $OUT/torch_anchor.log)"
OUT="$OUT" "$PYTHON" "$TORCH_ANCHOR" cpu > "$OUT/torch_anchor.log" 2>&1 ||
  { tail -5 "$OUT/torch_anchor.log" >&2; exit 1; }
echo
"$PYTHON" scripts/cpu_compare.py "$OUT/cpu_throughput.jsonl" "$OUT/torch_anchor.jsonl" |
  tee "$OUT/cpu_vs_pytorch.txt"
