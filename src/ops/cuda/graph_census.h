// What a captured training step is made of: its nodes by type and its kernels by name, so
// that a machine without Nsight (the GPU machines here have none) can still say where a
// small-batch step's launches go. TB_GRAPH_CENSUS=1 prints it to stderr at each capture.
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace tb::gpu {

// Whether TB_GRAPH_CENSUS asks for the census (read once).
bool graph_census_wanted();

// A few lines: node counts by type, then kernel nodes grouped by kernel name (most first;
// kernels whose name the runtime cannot tell, a library's driver-API launches, are counted
// together).
std::string graph_census(cudaGraph_t graph);

// TB_PROFILE_REPLAY=N: the N-th graph replay of this process (counted from 1) runs between
// cudaProfilerStart and cudaProfilerStop, so that a profiler started with its collection
// off (`ncu --profile-from-start off`) sees exactly one captured step and none of the
// warm-up, algorithm searches or autotuning before it. Returns whether this replay is it.
bool profile_this_replay();

}  // namespace tb::gpu
