// Hopper's warpgroup tensor-core instructions (wgmma) for the three convolution passes: more
// tiles of the tensor-core engine, numbered after conv_mma.cu's mma.sync tiles. The kernels
// are compiled for sm_90a only (conv_wgmma.cu), so they run on compute capability 9.0
// devices (H100, H200) and nowhere else; wgmma_available() says whether this one can.
#pragma once
#include "ops/cuda/conv_common.cuh"

namespace tb::gpu {

// wgmma_available() (conv_kernels.h): true when the current device runs the sm_90a kernels
// and TB_CONV_WGMMA is not "0" (a way to time the mma.sync tiles alone).

constexpr int kWgmmaTileCount = 14;  // the table's size, for candidate lists sized at compile time
int wgmma_tile_count();
int wgmma_tile_bm(int tile);
int wgmma_tile_bn(int tile);
constexpr int kWgmmaBK = 64;
bool wgmma_tile_serves(int tile, ConvPass pass);
// Whether the tile's loaders take this shape for this pass (dgrad: K a multiple of 64).
bool wgmma_tile_fits(int tile, ConvPass pass, const ConvGeometry& g);
std::string wgmma_tile_name(int tile);

// One launch of wgmma tile `tile` (0-based in wgmma's own table) for pass kPass; the grid and
// split-K handling are conv_mma.cu's (the same Epilogue, the same partials layout).
template <class T, ConvPass kPass>
void wgmma_launch(int tile, const ConvGeometry& g, const T* a, const T* b, const Epilogue<T>& ep,
                  int splits, cudaStream_t s);

}  // namespace tb::gpu
