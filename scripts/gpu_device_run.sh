#!/usr/bin/env bash
# One call on the GPU machine (the device tool), from the repository root, with devdata/
# carried: devdata/bundle.tar.xz holds trainbench and trainbench_tests built here (CUDA 13,
# sm_90) with the shared libraries the GPU machine lacks; cuDNN and cuBLASLt are the GPU
# machine's. Sections (default: tests bench torch sanitizer): tests nsys ncu ncudetail wgmma profile
# bench torch search train firststep fusion study cpu cpuconv census sanitizer. Logs and JSON lines go to $OUT (at most 8 files come
# back); the last lines printed are the comparison table.
set -uo pipefail
OUT=${OUT:-/tmp/tb-out}
mkdir -p "$OUT" /tmp/tb
SECTIONS=${*:-tests bench torch sanitizer}
# BUNDLE: which build every section runs (default devdata/bundle.tar.xz). AB_BUNDLE: a second
# build (make_device_bundle.sh's BUNDLE=...), timed against it in the bench section's A/B.
tar -C /tmp/tb -xJf "${BUNDLE:-devdata/bundle.tar.xz}"
lib_dir() { find /usr/local /usr/lib /opt -name "$1" 2>/dev/null | head -1 | xargs -r dirname; }
# Only our programs see these libraries: PyTorch must keep its own cuDNN.
TBLIB=/tmp/tb/lib:$(lib_dir libcudnn.so.9):$(lib_dir libcublasLt.so.13)
tb() { LD_LIBRARY_PATH=$TBLIB "$@"; }
B=/tmp/tb/bin
{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total --format=csv
  echo "our libraries: $TBLIB"
  tb ldd $B/trainbench | grep -E "not found|cudnn|cublas|cudart"
} 2>&1

has() { [[ " $SECTIONS " == *" $1 "* ]]; }
# Nsight Compute, wherever this machine has it (empty when it has none).
find_ncu() { command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1; }
# cuDNN's persistent batch norm cannot be profiled kernel by kernel (its blocks wait for each
# other): ncu runs of cudnn take ours.
standalone_bn_env() { [ "$1" = cudnn ] && echo TB_CUDNN_BATCH_NORM=ours; true; }

if has tests; then
  echo "== GPU tests"
  tb timeout 300 $B/trainbench_tests \
    --gtest_filter="${GPU_TESTS:-GpuOps.*:Backends/GpuOps.*:Backends/GpuTraining.*:GpuLossScaling.*:GpuDataset.*:GpuStreaming.*:*GpuGolden*}" \
    --gtest_output=xml:"$OUT/gpu_tests.xml" > "$OUT/gpu_tests.log" 2>&1
  echo "exit $?"
  grep -E "^\[  (PASSED|FAILED) " "$OUT/gpu_tests.log" | sed 's/, where GetParam.*//' | head -40
fi

if has profile; then
  # PROFILE_MODEL (default resnet18) and PROFILE_BATCHES (default "64 512") pick the runs.
  PM=${PROFILE_MODEL:-resnet18}
  echo "== per-layer profile, $PM bf16, batch ${PROFILE_BATCHES:-64 512}"
  for impl in ${PROFILE_IMPLS:-cudnn cuda}; do
    for b in ${PROFILE_BATCHES:-64 512}; do
      f="$OUT/profile_${PM}_${impl}_b$b"
      tb timeout 120 $B/trainbench profile --model $PM --impl $impl --batch-size $b \
        --precision bf16 --repeats 5 --json "$f.json" > "$f.log" 2>&1
      echo "$impl bf16 b$b: $(tail -1 "$f.log")"
    done
  done
fi

if has nsys; then
  echo "== kernels of one step (nsys, graph nodes traced): resnet18 bf16, ${NSYS_IMPLS:-cudnn} b${NSYS_BATCH:-64}"
  NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
  if [ -z "$NSYS" ]; then echo "no nsys on this machine"; else
    for impl in ${NSYS_IMPLS:-cudnn}; do
      # A first run fills the algorithm cache, so the traced one searches nothing.
      tb timeout 100 $B/trainbench throughput --model resnet18 --impl $impl --batch-size \
        ${NSYS_BATCH:-64} --precision bf16 --warmup 1 --repeats 2 > /dev/null 2>&1
      tb timeout 150 $NSYS profile --cuda-graph-trace=node --trace=cuda -o /tmp/tb/nsys_$impl -f true \
        $B/trainbench throughput --model resnet18 --impl $impl --batch-size ${NSYS_BATCH:-64} \
        --precision bf16 --warmup 2 --repeats 10 > /tmp/tb/nsys_run.log 2>&1 || tail -5 /tmp/tb/nsys_run.log
      $NSYS stats --report cuda_gpu_kern_sum --format csv -o /tmp/tb/kern_$impl /tmp/tb/nsys_$impl.nsys-rep > /dev/null 2>&1
      f=$(ls /tmp/tb/kern_${impl}*.csv 2>/dev/null | head -1)
      [ -n "$f" ] && cp "$f" "$OUT/nsys_kernels_$impl.csv" && python3 - "$f" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
total = sum(float(r["Total Time (ns)"]) for r in rows)
calls = sum(int(r["Instances"]) for r in rows)
print(f"{len(rows)} kernels, {calls} launches, {total / 1e6:.2f} ms of kernel time")
for r in rows[:25]:
    print(f'{float(r["Time (%)"]):5.1f}% {int(r["Instances"]):6d} x {float(r["Avg (ns)"]) / 1e3:8.1f} us  {r["Name"][:110]}')
PY
    done
  fi
fi

if has ncu; then
  # Each kernel of one captured step, timed alone by Nsight Compute (gpu__time_duration, no
  # cache flush, clocks as found): TB_PROFILE_REPLAY brackets one replay with
  # cudaProfilerStart/Stop, so warm-up, searches and autotuning stay out. The step's own
  # median (a run without ncu) beside the kernels' sum says how much of it is gaps between
  # launches and memsets. NCU_RUNS="impl:batch ..." (default cudnn:64 cudnn:512 cuda:64);
  # NCU_ENV="VAR=value ..." for both runs. cuDNN's persistent batch norm cannot be timed alone
  # (its blocks wait for each other), so cudnn runs take TB_CUDNN_BATCH_NORM=ours here.
  NCU=$(find_ncu)
  echo "== kernels of one step (ncu): ${NCU_MODEL:-resnet18} bf16, ${NCU_RUNS:-cudnn:64 cudnn:512 cuda:64}"
  if [ -z "$NCU" ]; then echo "no ncu on this machine"; else
    for run in ${NCU_RUNS:-cudnn:64 cudnn:512 cuda:64}; do
      impl=${run%:*}; b=${run#*:}
      args="throughput --model ${NCU_MODEL:-resnet18} --impl $impl --batch-size $b --precision bf16"
      # A first run fills the algorithm cache and gives the step time without the profiler.
      bn=$(standalone_bn_env $impl)
      tb env $bn ${NCU_ENV:-} timeout 120 $B/trainbench $args --warmup 3 --repeats 20 > /tmp/tb/ncu_step.log 2>&1
      step=$(grep -E "^${NCU_MODEL:-resnet18}" /tmp/tb/ncu_step.log | head -1)
      tb env $bn ${NCU_ENV:-} TB_PROFILE_REPLAY=6 timeout 300 $NCU --profile-from-start off --graph-profiling node \
        --metrics gpu__time_duration.sum --clock-control none --cache-control none --csv \
        --print-units base --log-file "/tmp/tb/ncu_${impl}_b$b.csv" \
        $B/trainbench $args --warmup 3 --repeats 5 > /tmp/tb/ncu_run.log 2>&1 ||
        tail -5 /tmp/tb/ncu_run.log
      echo "-- $impl b$b $bn ${NCU_ENV:-}, without the profiler: $step"
      python3 - "/tmp/tb/ncu_${impl}_b$b.csv" "$OUT/ncu_kernels.txt" "$impl b$b" <<'PY'
import csv, sys, collections
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
rows = [r for r in csv.DictReader(lines) if r.get("Metric Name") == "gpu__time_duration.sum"]
us = [(r["Kernel Name"], float(r["Metric Value"].replace(",", "")) / 1e3) for r in rows]
total = sum(t for _, t in us)
by = collections.defaultdict(lambda: [0, 0.0])
for n, t in us:
    by[n][0] += 1; by[n][1] += t
head = f"{len(us)} kernels, {total:.1f} us of kernel time (each timed alone)"
print(head)
for n, (c, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[:14]:
    print(f"{100 * t / total:5.1f}% {c:4d} x {t / c:7.1f} us  {n[:100]}")
with open(sys.argv[2], "a") as f:
    f.write(f"== {sys.argv[3]}: {head}\n")
    for i, (n, t) in enumerate(us):
        f.write(f"{i:4d} {t:8.2f} us  {n}\n")
PY
    done
  fi
fi

if has ncudetail; then
  # Why a convolution kernel runs at the speed it does: Nsight Compute's throughput, memory
  # and warp-state sections for the first NCU_DETAIL_COUNT (default 12) convolution kernels of
  # one captured resnet18 bf16 step (layer1's come first), per NCU_DETAIL_RUNS="impl:batch"
  # (default cuda:512 cudnn:512). Replayed per section: slow, so few kernels.
  NCU=$(find_ncu)
  echo "== convolution kernels in detail (ncu sections): ${NCU_DETAIL_RUNS:-cuda:512 cudnn:512}"
  if [ -z "$NCU" ]; then echo "no ncu on this machine"; else
    for run in ${NCU_DETAIL_RUNS:-cuda:512 cudnn:512}; do
      impl=${run%:*}; b=${run#*:}
      args="throughput --model resnet18 --impl $impl --batch-size $b --precision bf16"
      bn=$(standalone_bn_env $impl)
      # Why warps wait (cycles per issued instruction, by reason); NCU_DETAIL_STALLS=0 drops them.
      stalls=""
      [ "${NCU_DETAIL_STALLS:-1}" = 1 ] && stalls="--metrics $(printf 'smsp__average_warps_issue_stalled_%s_per_issue_active.ratio,' \
        long_scoreboard short_scoreboard barrier wait math_pipe_throttle mio_throttle lg_throttle \
        not_selected dispatch_stall sleeping branch_resolving no_instruction | sed 's/,$//')"
      tb env $bn timeout 120 $B/trainbench $args --warmup 3 --repeats 5 > /dev/null 2>&1
      tb env $bn TB_PROFILE_REPLAY=5 timeout 200 $NCU --profile-from-start off --graph-profiling node \
        --kernel-name "regex:${NCU_DETAIL_KERNELS:-conv_wgmma|conv_mma|conv_halo|xmma|implicit|fprop|dgrad|wgrad|cutlass}" \
        --launch-count ${NCU_DETAIL_COUNT:-12} --section SpeedOfLight --section MemoryWorkloadAnalysis \
        --section WarpStateStats --section Occupancy --section LaunchStats $stalls --csv --page details \
        --print-units base --log-file "/tmp/tb/ncudetail_${impl}_b$b.csv" \
        $B/trainbench $args --warmup 3 --repeats 3 > /tmp/tb/ncudetail_run.log 2>&1 ||
        tail -5 /tmp/tb/ncudetail_run.log
      python3 - "/tmp/tb/ncudetail_${impl}_b$b.csv" "$OUT/ncu_detail.txt" "$impl b$b" <<'PY'
import csv, sys, collections
lines = [l for l in open(sys.argv[1]) if l.startswith('"')]
rows = list(csv.DictReader(lines))
by = collections.OrderedDict()
for r in rows:
    by.setdefault((r["ID"], r["Kernel Name"]), []).append(r)
want = ["Duration", "Compute (SM) Throughput", "Memory Throughput", "L1/TEX Cache Throughput",
        "L2 Cache Throughput", "DRAM Throughput", "L1/TEX Hit Rate", "L2 Hit Rate",
        "Warp Cycles Per Issued Instruction", "Issue Slots Busy", "Registers Per Thread",
        "Achieved Occupancy", "Dynamic Shared Memory Per Block", "Grid Size", "Block Size"]
with open(sys.argv[2], "a") as f:
    f.write(f"== {sys.argv[3]}\n")
    for (i, name), rs in by.items():
        vals = {r["Metric Name"]: r["Metric Value"] + " " + r["Metric Unit"] for r in rs}
        line = f"#{i} {name[:110]}\n   " + "; ".join(f"{k}: {vals[k]}" for k in want if k in vals)
        stall = {}
        for k, v in vals.items():
            try:
                if "issue_stalled_" in k:
                    stall[k.split("stalled_")[1].split("_per_issue")[0]] = float(v.split()[0].replace(",", ""))
            except (ValueError, IndexError):
                pass
        if stall:  # the largest reasons first, in cycles per issued instruction
            line += "\n   stalls: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                sorted(stall.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        print(line)
        f.write(line + "\n")
PY
    done
  fi
fi

if has wgmma; then
  echo "== our kernels with and without the wgmma tiles (resnet18 bf16); HGMMA in the binary:"
  CUOBJDUMP=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null)
  [ -n "$CUOBJDUMP" ] && $CUOBJDUMP --dump-sass $B/trainbench | grep -c HGMMA
  # With the wgmma tiles: cudnn beside cuda for the ratio, and every timed candidate of the
  # autotuner (TB_CONV_AUTOTUNE_LOG) in autotune.log.
  for w in 0 1; do
    impls=cuda; [ $w = 1 ] && impls=cudnn,cuda
    TB_CONV_AUTOTUNE_LOG=$w TB_CONV_WGMMA=$w tb timeout 200 $B/trainbench throughput \
      --warmup 3 --repeats 20 --impl $impls --model resnet18,resnet50 --batch-size 64,512 \
      --precision bf16 > "$OUT/wgmma$w.log" 2> "$OUT/autotune$w.log"
    grep -E "^resnet" "$OUT/wgmma$w.log" | sed "s/^/wgmma=$w  /"
  done
  rm -f "$OUT/autotune0.log"
fi

BENCH="$B/trainbench throughput --warmup 3 --repeats 20 --impl cudnn,cuda --baseline cudnn --results $OUT/throughput.jsonl"
if has bench; then
  echo "== throughput"
  # BENCH_MAIN=0: only the AB rows below (a shorter call).
  [ "${BENCH_MAIN:-1}" = 1 ] && {
    tb timeout 200 $BENCH --model resnet18 --batch-size 64,512 --precision bf16
    # BENCH_QUICK=1: the bf16 rows only (a shorter call).
    [ "${BENCH_QUICK:-0}" = 1 ] || tb timeout 200 $BENCH --model resnet18 --batch-size 64,512 --precision fp32
    tb timeout 200 $BENCH --model alexnet_lite,cifar_cnn,resnet34,resnet50 --batch-size 512 --precision bf16
    [ "${BENCH_QUICK:-0}" = 1 ] || tb timeout 100 $BENCH --model resnet18 --batch-size 64,512 --precision bf16 --no-graph
  } > "$OUT/throughput.log" 2>&1
  [ "${BENCH_MAIN:-1}" = 1 ] && grep -E "^(resnet|alexnet|cifar)" "$OUT/throughput.log"
  # AB="VAR=value ...": resnet18 bf16 with the default build, then with each setting, twice
  # over, interleaved (not in the JSON: the table above stays the default build's). E.g.
  # AB="TB_WEIGHT_COPIES=off TB_CUDNN_BATCH_NORM=ours"; AB_MODELS, AB_BATCHES and AB_IMPLS
  # change the rows (default resnet18, 64,512, cudnn,cuda). AB_BUNDLE=<second bundle> adds
  # that build as one more setting ("bundle-b"), run with its own libraries.
  if [ -n "${AB_BUNDLE:-}" ]; then
    mkdir -p /tmp/tb-b
    tar -C /tmp/tb-b -xJf "$AB_BUNDLE"
  fi
  settings=
  [ -n "${AB:-}${AB_BUNDLE:-}" ] && settings="default ${AB:-} ${AB_BUNDLE:+bundle-b}"
  for round in 1 2; do
    for setting in $settings; do
      bin=$B lib=$TBLIB vars=$setting
      [ "$setting" = default ] && vars=
      if [ "$setting" = bundle-b ]; then
        bin=/tmp/tb-b/bin lib=/tmp/tb-b/lib:${TBLIB#/tmp/tb/lib:} vars=
      fi
      env $vars LD_LIBRARY_PATH=$lib timeout 100 \
        $bin/trainbench throughput --warmup 3 --repeats 20 --impl ${AB_IMPLS:-cudnn,cuda} \
        --model ${AB_MODELS:-resnet18} --batch-size ${AB_BATCHES:-64,512} --precision bf16 2>&1 |
        grep -E "^(resnet|alexnet|cifar)" | sed "s/^/$setting  /"
    done
  done
fi

if has census; then
  # What one captured step launches (TB_GRAPH_CENSUS): resnet18 bf16, CENSUS_BATCH (64).
  echo "== graph census: resnet18 bf16 b${CENSUS_BATCH:-64}"
  for impl in cudnn cuda; do
    TB_GRAPH_CENSUS=1 tb timeout 100 $B/trainbench throughput --model resnet18 --impl $impl \
      --batch-size ${CENSUS_BATCH:-64} --precision bf16 --warmup 2 --repeats 5 2>&1 |
      grep -E "graph census|^ +[0-9]+ x " | sed "s/^/$impl /"
  done > "$OUT/census.log" 2>&1
  grep -E "graph census" "$OUT/census.log"
fi

if has search; then
  echo "== cuDNN's measured algorithms (resnet18 b64/b512, resnet50 b512, bf16): time, workspace, determinism"
  # An empty cache, so that every pass is measured and printed; '*' marks the one taken.
  for m in "resnet18 64,512" "resnet50 512"; do
    set -- $m
    TB_ALGO_CACHE=off TB_CUDNN_SEARCH_LOG=1 tb timeout 120 $B/trainbench throughput --model $1 \
      --impl cudnn --batch-size $2 --precision bf16 --warmup 1 --repeats 3 2>&1 |
      grep -E "^cudnn search" | sed "s/^/$1 /"
  done > "$OUT/cudnn_search.log"
  wc -l < "$OUT/cudnn_search.log"
fi

if has torch; then
  echo "== PyTorch peer (gpu part)"
  (cd devdata && PYTHONUNBUFFERED=1 OUT="$OUT" timeout 180 python3 torch_anchor.py gpu > /tmp/torch.log 2>&1)
  tail -2 /tmp/torch.log
fi

if has train; then
  echo "== time to accuracy (resnet18, bf16, SGD nesterov one-cycle), algorithm cache cold then warm"
  # The first run of each recipe starts from an empty algorithm cache (it measures cuDNN's
  # algorithms); the seeds after it find them in the cache, as any later run on this machine.
  export TB_ALGO_CACHE=/tmp/tb/algo-cache-train.json
  T="$B/trainbench train --model resnet18 --data-dir devdata/data
     --precision bf16 --optimizer sgd --momentum 0.9 --nesterov
     --lr-schedule one-cycle --no-progress --results $OUT/train.jsonl"
  recipe() {  # label, then train options; runs seeds 1 (cold cache) 1 2 3 (warm)
    local label=$1; shift
    local seeds="1 1 2 3"
    # Variants share the warm cache the recipe before them left: seeds 1 2 3 (or $SEEDS).
    if [ "${WARM_ONLY:-0}" = 1 ]; then seeds="${SEEDS:-1 2 3}"; else rm -f "$TB_ALGO_CACHE"; fi
    for seed in $seeds; do
      tb timeout 120 $T --impl ${IMPL:-${TRAIN_IMPL:-cudnn}} --weight-decay ${WD:-5e-4} "$@" --seed $seed > /tmp/train_run.log 2>&1 || tail -3 /tmp/train_run.log
      python3 - "$OUT/train.jsonl" "$label" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
m, f = r["model"], r["final"]
print(f"{sys.argv[2]:34s} seed {r['config']['seed']}  train {f['train_seconds']:.2f} s  "
      f"first step {m['first_step_seconds'][0]:.2f} s (search {m['algorithm_search_seconds']:.2f} s, "
      f"{m['algorithms_cached']} cached)  test {100 * f['test_accuracy']:.2f}%")
PY
    done
  }
  # TRAIN_RECIPES=targets: only the two recipes behind the issue's targets (a shorter call);
  # variants: those two, with three more seeds of the Fashion-MNIST one on a warm cache;
  # fashion: Fashion-MNIST alternatives only, for a short call; mnist: MNIST step counts;
  # sweep: the recipes in $SWEEP.
  if [ "${TRAIN_RECIPES:-all}" = mnist ]; then
    # MNIST alone: the target's recipe, then shorter ones on the warm cache (MNIST_STEPS).
    M="--dataset mnist --batch-size 256 --epochs 2 --lr 0.15 --clip-grad-norm 2 --label-smoothing 0.1"
    {
      recipe "mnist b256 256 steps lr0.15 clip2 ls0.1" $M --max-steps 256
      for steps in ${MNIST_STEPS:-240 224}; do
        SEEDS="1 2 3 4 5" WARM_ONLY=1 recipe "mnist b256 $steps steps lr0.15 clip2 ls0.1" $M --max-steps $steps
      done
    } > "$OUT/train.log" 2>&1
  elif [ "${TRAIN_RECIPES:-all}" = sweep ]; then
    # SWEEP: recipes separated by ';', each "label: train options", on one warm cache (the
    # first recipe fills it); SWEEP_SEEDS (default 1 2 3) for each.
    {
      first=1
      IFS=';' read -ra recipes <<< "$SWEEP"
      for r in "${recipes[@]}"; do
        # A label starting with the word cuda runs that recipe on --impl cuda.
        label=${r%%:*}; opts=${r#*:}; impl=cudnn; [[ $label == cuda* ]] && impl=cuda
        if [ $first = 1 ]; then IMPL=$impl recipe "$label" $opts; first=0
        else IMPL=$impl SEEDS="${SWEEP_SEEDS:-1 2 3}" WARM_ONLY=1 recipe "$label" $opts; fi
      done
    } > "$OUT/train.log" 2>&1
  elif [ "${TRAIN_RECIPES:-all}" = fashion ]; then
    F="--dataset fashion-mnist --batch-size 512 --epochs 6 --validation 0 --lr 0.15"
    {
      recipe "fashion b512 6ep lr0.15 clip2 ls0.1" $F --clip-grad-norm 2 --label-smoothing 0.1
      SEEDS="4 5 6" WARM_ONLY=1 recipe "fashion b512 6ep lr0.15 clip1" $F --clip-grad-norm 1
    } > "$OUT/train.log" 2>&1
  else {
    if [ "${TRAIN_RECIPES:-all}" = all ]; then
      recipe "fashion-mnist b512 7ep lr0.1" --dataset fashion-mnist --batch-size 512 --epochs 7 --lr 0.1
      recipe "fashion-mnist b256 6ep lr0.15" --dataset fashion-mnist --batch-size 256 --epochs 6 --lr 0.15
    fi
    # Clipping tames epoch 2's loss spikes near the one-cycle peak; label smoothing adds a
    # little on top (docs/gpu-notes.md v9).
    FT="--dataset fashion-mnist --batch-size 512 --epochs 6 --lr 0.15 --validation 0 --clip-grad-norm 2 --label-smoothing 0.1"
    recipe "fashion-mnist b512 6ep lr0.15 clip2 ls0.1" $FT
    if [ "${TRAIN_RECIPES:-all}" = variants ]; then
      SEEDS="${VARIANT_SEEDS:-4 5 6}" WARM_ONLY=1 recipe "fashion-mnist b512 6ep lr0.15 clip2 ls0.1" $FT
    fi
    # MNIST: label smoothing and clipping, as for Fashion-MNIST, let 256 steps at lr 0.15 do
    # what 320 at lr 0.1 did (docs/gpu-notes.md v17).
    recipe "mnist b256 256 steps lr0.15 clip2 ls0.1" --dataset mnist --batch-size 256 --epochs 2 \
      --max-steps 256 --lr 0.15 --clip-grad-norm 2 --label-smoothing 0.1
  } > "$OUT/train.log" 2>&1
  fi
  unset TB_ALGO_CACHE
  cat "$OUT/train.log"
fi

if has firststep; then
  # Where a warm-cache run's first step goes: each layer of the first forward and backward
  # timed alone (TB_TRACE_FIRST_PASS=1), with CUDA's lazy and eager kernel loading.
  echo "== the first step, layer by layer (MNIST recipe, warm algorithm cache)"
  export TB_ALGO_CACHE=/tmp/tb/algo-cache-first.json
  for impl in ${FIRST_IMPLS:-cudnn cuda}; do
    F="$B/trainbench train --model resnet18 --data-dir devdata/data --impl $impl --precision bf16
       --optimizer sgd --momentum 0.9 --nesterov --lr-schedule one-cycle --no-progress
       --dataset mnist --batch-size 256 --epochs 1 --max-steps 20 --lr 0.1"
    tb timeout 120 $F > /dev/null 2>&1  # fills the algorithm cache
    for mode in LAZY EAGER; do
      echo "-- $impl, CUDA_MODULE_LOADING=$mode"
      CUDA_MODULE_LOADING=$mode TB_TRACE_FIRST_PASS=1 tb timeout 120 $F 2>&1 |
        grep -A8 '^first .* pass\|^first steps'
    done
  done 2>&1 | tee "$OUT/first_step.log"
  unset TB_ALGO_CACHE
fi

if has fusion; then
  # Does cuDNN's graph API fuse batch-norm statistics (and the previous normalise + ReLU) into
  # resnet18's convolutions on this GPU, and at what cost? (bench/bench_cudnn_fusion.cpp)
  echo "== cuDNN graph API: convolution + batch-norm statistics (bench_cudnn_fusion)"
  tb timeout 240 $B/bench_cudnn_fusion --benchmark_min_time=0.2 2>&1 | tee "$OUT/cudnn_fusion.log"
fi

if has study; then
  echo "== a study with PyTorch rows on the GPU (trainbench bench)"
  tb timeout 300 $B/trainbench bench --no-progress --data-dir devdata/data --dataset mnist \
    --model simple_cnn,alexnet_lite --impl onednn,cudnn,cuda,pytorch --limit 12000 \
    --results "$OUT/study.jsonl" --report "$OUT/study_report.html" > "$OUT/study.log" 2>&1
  echo "exit $?"
  sed -n '/^dataset /,$p' "$OUT/study.log" | head -20
fi

if has cpu; then
  echo "== CPU backends against PyTorch on the host's cores (issue 3), batch 64"
  tb timeout 400 $B/trainbench throughput --model alexnet_lite,cifar_cnn,resnet18 \
    --impl cpu,onednn --threads 1,$(nproc) --batch-size 64 --warmup 2 --repeats 7 \
    --baseline onednn --results "$OUT/cpu_throughput.jsonl" > "$OUT/cpu_throughput.log" 2>&1
  (cd devdata && OUT="$OUT" timeout 300 python3 torch_anchor.py cpu > /tmp/torch_cpu.log 2>&1)
  python3 scripts/cpu_compare.py "$OUT/cpu_throughput.jsonl" "$OUT/torch_anchor.jsonl"
  # Where the all-threads step goes (one file: at most 8 come back from a call).
  # CPU_PROFILE_THREADS (default: all cores) may list several counts.
  for m in ${CPU_PROFILE_MODELS:-alexnet_lite resnet18}; do
    for t in ${CPU_PROFILE_THREADS:-$(nproc)}; do
      for impl in cpu onednn; do
        echo "== $m $impl $t threads"
        tb timeout 120 $B/trainbench profile --model $m --impl $impl --batch-size 64 --repeats 5 --threads $t
      done
    done
  done > "$OUT/cpu_profile.log" 2>&1
  grep -E "^== |^sum of" "$OUT/cpu_profile.log"
fi

if has cpuconv; then
  # Each resnet18 convolution pass alone (bench_conv) at 1 thread and at every core: which
  # layers lose most when the step runs on all cores. CPUCONV_FILTER picks the benchmarks.
  echo "== resnet18 convolution passes, 1 thread and $(nproc) (bench_conv)"
  for t in 1 $(nproc) ${CPUCONV_AB:+ab}; do
    [ $t = ab ] && { export $CPUCONV_AB; t=$(nproc); }
    TRAINBENCH_THREADS=$t tb timeout 200 $B/bench_conv --benchmark_min_time=0.2 \
      --benchmark_filter="${CPUCONV_FILTER:--(direct|winograd4)}" 2>&1 | grep -E "^resnet18|peak"
  done > "$OUT/cpuconv.log" 2>&1
  [ -n "${CPUCONV_AB:-}" ] && unset "${CPUCONV_AB%%=*}"
  python3 - "$OUT/cpuconv.log" <<'PY'
import re, sys
runs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("measured FMA peak"):
        cur = {}; runs.append(cur)
    m = re.match(r"(resnet18/\S+)/real_time\s+([\d.]+) ms", line)
    if m and cur is not None:
        cur[m.group(1)] = float(m.group(2))
if len(runs) >= 2:
    one, many = runs[0], runs[1:]
    print(f"{'pass':34s} {'1t ms':>8s} " + " ".join(f"{'all ms':>8s} {'scaling':>8s}" for _ in many))
    for k in one:
        if all(k in m for m in many):
            print(f"{k:34s} {one[k]:8.2f} " + " ".join(f"{m[k]:8.2f} {one[k] / m[k]:7.1f}x" for m in many))
PY
  # CPUCONV_AB="VAR=value": the all-cores passes again with that setting (the table's last
  # columns), then resnet18's whole cpu step at all cores, default and setting, twice over.
  if [ -n "${CPUCONV_AB:-}" ]; then
    echo "(last columns: $CPUCONV_AB)"
    for round in 1 2; do
      for setting in default $CPUCONV_AB; do
        env $([ "$setting" = default ] || echo "$setting") LD_LIBRARY_PATH=$TBLIB timeout 120 \
          $B/trainbench throughput --model resnet18 --impl cpu --threads $(nproc) --batch-size 64 \
          --warmup 2 --repeats 7 2>&1 | grep -E "^resnet" | sed "s/^/$setting  /"
      done
    done
  fi
fi

if has sanitizer; then
  echo "== compute-sanitizer (memcheck), training steps (plain and clipped) on both backends, the clip kernels, cudnn's small-channel route"
  CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
  TB_CONV_AUTOTUNE=0 tb timeout 240 $CS --tool memcheck --error-exitcode 9 $B/trainbench_tests \
    --gtest_filter="${SANITIZE_TESTS:-Backends/GpuTraining.CapturedStepsMatchHostSteps/cuda_bf16:Backends/GpuTraining.CapturedStepsMatchHostSteps/cudnn_bf16:Backends/GpuOps.ClipGradNormMatchesRef/cuda_fp32:Backends/GpuOps.BatchNorm*/cudnn_bf16:Backends/GpuOps.WeightLayout*:Backends/GpuOps.CudnnSmallChannel*/cudnn_bf16}" \
    > "$OUT/sanitizer.log" 2>&1
  echo "exit $?"
  grep -E "ERROR SUMMARY|PASSED|FAILED|Invalid" "$OUT/sanitizer.log" | head -10
  # Every candidate launch of our convolution kernels (every tile, split and stride class);
  # SANITIZE_CONV=0 skips it (a shorter call).
  if [ "${SANITIZE_CONV:-1}" = 1 ]; then
    tb timeout 200 $CS --tool memcheck --error-exitcode 9 $B/trainbench_tests \
      --gtest_filter="*GpuOps.ConvEveryCandidateLaunchMatchesRef/cuda_${SANITIZE_DTYPES:-*}" \
      > "$OUT/sanitizer_conv.log" 2>&1
    echo "exit $?"
    grep -E "ERROR SUMMARY|PASSED|FAILED|Invalid" "$OUT/sanitizer_conv.log" | head -10
  fi
fi

python3 scripts/gpu_compare.py "$OUT/throughput.jsonl" "$OUT/torch_anchor.jsonl" 2>&1 | tee "$OUT/compare.txt"
