#!/usr/bin/env bash
# Packs what a GPU-machine call needs into devdata/ (listed in .git/info/exclude, carried by
# the device tool): trainbench, trainbench_tests, bench_conv and bench_cudnn_fusion from build/
# (configure with -DCMAKE_CUDA_ARCHITECTURES=90), the shared libraries the GPU machine lacks (cuDNN and
# cuBLASLt are left out: the GPU machine's own are used), the PyTorch anchor script and the
# MNIST / Fashion-MNIST files. scripts/gpu_device_run.sh unpacks and runs it.
# BUNDLE=devdata/bundle-b.tar.xz BUILD=build-b: a second build's bundle beside the first, for
# gpu_device_run.sh's AB_BUNDLE (a branch against main in one call).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
BUNDLE=${BUNDLE:-devdata/bundle.tar.xz}
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" devdata/data
cp "$BUILD/trainbench" "$BUILD/trainbench_tests" "$BUILD/bench_conv" "$BUILD/bench_cudnn_fusion" \
  "$STAGE/bin/"
# Every library the binaries load, except the C library's own and the GPU machine's CUDA
# math libraries (cuDNN, cuBLAS) and driver.
ldd "$BUILD/trainbench" "$BUILD/trainbench_tests" "$BUILD/bench_conv" "$BUILD/bench_cudnn_fusion" | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so|libcudnn|libcublas|libcuda\.so|libz\.so' |
  while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
# Stripped and packed hard: a call carries at most 64 MiB with the working tree.
strip --strip-unneeded "$STAGE"/bin/* "$STAGE"/lib/* 2>/dev/null || true
XZ_OPT=-9e tar -C "$STAGE" -cJf "$BUNDLE" bin lib
SHARED=${SHARED:-../shared}
cp -f "$SHARED/peers/torch_anchor.py" devdata/ 2>/dev/null || true
for ds in mnist fashion-mnist; do
  mkdir -p "devdata/data/$ds"
  cp -f "$SHARED/data/$ds/"*.gz "devdata/data/$ds/" 2>/dev/null || true
done
du -sh devdata
