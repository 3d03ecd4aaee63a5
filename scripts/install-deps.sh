#!/usr/bin/env bash
# Installs what trainbench needs on Debian 12, by package name. Safe to run again.
# The CUDA 13 toolkit (nvcc, cuDNN 9, cuBLAS, NCCL) is expected at /usr/local/cuda when
# present; without it, trainbench builds its CPU backends only.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev libsvm-dev
  nodejs chromium
  python3-torch python3-numpy
)
# npm fetches the HTML report's chart libraries at build time. Debian's npm package, unless
# an npm is already on the PATH: NodeSource's nodejs bundles one and conflicts with Debian's.
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
