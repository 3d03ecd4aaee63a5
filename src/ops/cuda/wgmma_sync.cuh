// What every wgmma kernel (conv_wgmma.cu, conv_wgmma_halo.cu) needs around the instructions
// themselves (wgmma_ops.cuh): shared-memory matrix descriptors, the fences that order
// wgmma's asynchronous reads and writes, and the proxy fence that makes cp.async's writes
// visible to them. sm_90a only.
#pragma once
#include <cstdint>

// Defined in the device pass of an sm_90a build: kernel bodies that use wgmma compile only
// there (the host pass and other architectures see empty bodies).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TB_WGMMA_DEVICE 1
#endif

namespace tb::gpu {

// A shared-memory matrix descriptor: start address, leading and stride byte offsets (all in
// 16-byte units), 128-byte swizzle (layout type 1 in bits 62-63). Base offset 0: every tile
// starts on a 1024-byte boundary.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr, uint32_t lead, uint32_t stride) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(lead >> 4) << 16) |
         (uint64_t(stride >> 4) << 32) | (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Shared memory written by cp.async (the generic proxy) becomes visible to wgmma's reads
// (the async proxy) only through this fence, before the barrier that publishes it.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Ties accumulator registers to this point: the compiler may not move their reads or writes
// across it (wgmma writes them asynchronously, invisibly to the compiler).
template <int N>
__device__ __forceinline__ void fence_registers(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

}  // namespace tb::gpu
