// Hopper's warpgroup tensor-core instructions (wgmma) for the three convolution passes: more
// tiles of the tensor-core engine, numbered after conv_mma.cu's mma.sync tiles. The kernels
// are compiled for sm_90a only (conv_wgmma.cu), so they run on compute capability 9.0
// devices (H100, H200) and nowhere else; wgmma_available() says whether this one can.
#pragma once
#include "ops/cuda/conv_common.cuh"

namespace tb::gpu {

// wgmma_available() (conv_kernels.h): true when the current device runs the sm_90a kernels
// and TB_CONV_WGMMA is not "0" (a way to time the mma.sync tiles alone).

constexpr int kWgmmaTileCount = 16;  // the table's size, for candidate lists sized at compile time
int wgmma_tile_count();
int wgmma_tile_bm(int tile);
int wgmma_tile_bn(int tile);
constexpr int kWgmmaBK = 64;
bool wgmma_tile_serves(int tile, ConvPass pass);
// Whether the tile takes any split count (the persistent halo kernels do not: one, or for
// weight gradients one per block, wgmma_tile_fixed_splits()).
bool wgmma_tile_splits(int tile);
int wgmma_tile_fixed_splits(int tile, ConvPass pass, const ConvGeometry& g, int sm_count);
// Whether the tile's loaders take this shape for this pass (dgrad: K a multiple of 64).
bool wgmma_tile_fits(int tile, ConvPass pass, const ConvGeometry& g);
std::string wgmma_tile_name(int tile);

// One launch of wgmma tile `tile` (0-based in wgmma's own table) for pass kPass; the grid and
// split-K handling are conv_mma.cu's (the same Epilogue, the same partials layout).
template <class T, ConvPass kPass>
void wgmma_launch(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s);

// conv_wgmma_halo.cu: 3x3 stride-1 convolutions of 32-pixel-wide images whose reduction has
// 64 channels (fprop: C = 64; dgrad: K = 64; wgrad: C = K = 64) and whose outputs come in
// 64s, two tiles of the table above.
bool halo_conv_fits(ConvPass pass, const ConvGeometry& g);
// Blocks of its persistent launches on a GPU of sm_count SMs: the weight gradient's partial
// sums come one per block (its split count).
int halo_conv_blocks(const ConvGeometry& g, int sm_count);
// shift: build the shifted input copies in shared memory rather than load them from L2.
template <class T, ConvPass kPass>
void halo_conv_launch(bool shift, const ConvGeometry& g, const T* in, const T* w,
                      const Epilogue<T>& ep, int splits, cudaStream_t s);
template <class T>
void halo_conv_wgrad_launch(bool shift, const ConvGeometry& g, const T* dy, const T* x,
                            float* partials, int splits, cudaStream_t s);

}  // namespace tb::gpu
