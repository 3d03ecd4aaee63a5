// Programmatic dependent launch (compute capability 9.0 and later). Inside a CUDA graph a
// kernel normally starts only after the one before it has drained and the next launch has
// gone through the front end: a few microseconds per kernel, which at batch 64 (about 400
// small kernels a step) is a large share of the step. A kernel launched with the
// programmatic-serialization attribute may be scheduled as soon as the kernel before it has
// let it (griddepcontrol.launch_dependents); it then waits in griddepcontrol.wait until that
// kernel has completed and its writes are visible.
//
// The rule that keeps this correct: every kernel launched through launch_kernel() calls
// pdl_begin() first, before it reads or writes global memory. The wait covers the whole
// chain (the kernel before waited for its own predecessor before it could complete), and
// kernels of libraries (cuDNN, cuBLASLt) are launched normally, so they wait for ours in
// full.
//
// It is off by default and TB_PDL=1 turns it on: measured on an H100, it slowed our
// resnet18 step (docs/gpu-notes.md, v11). Every kernel keeps pdl_begin(), which costs
// nothing when the attribute is not set, so the switch stays a pure launch setting.
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "ops/cuda/cuda_check.h"

namespace tb::gpu {

// Whether launch_kernel() asks for programmatic dependent launch on the current device
// (TB_PDL=1, on compute capability 9.0 or later).
bool pdl_enabled();

// The first statement of every kernel: wait for the kernels this one depends on, then let
// the next kernel in the stream begin launching. Both are no-ops when the kernel was
// launched the ordinary way or the device is older.
__device__ __forceinline__ void pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic dependent launch where
// pdl_enabled(); a bad configuration throws at once.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attribute;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  TB_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace tb::gpu
