#include "ops/cuda/graph_census.h"

#include <cxxabi.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

namespace tb::gpu {
namespace {

const char* type_name(cudaGraphNodeType t) {
  switch (t) {
    case cudaGraphNodeTypeKernel:
      return "kernel";
    case cudaGraphNodeTypeMemcpy:
      return "memcpy";
    case cudaGraphNodeTypeMemset:
      return "memset";
    case cudaGraphNodeTypeHost:
      return "host";
    case cudaGraphNodeTypeGraph:
      return "child graph";
    case cudaGraphNodeTypeEmpty:
      return "empty";
    case cudaGraphNodeTypeWaitEvent:
      return "event wait";
    case cudaGraphNodeTypeEventRecord:
      return "event record";
    default:
      return "other";
  }
}

// The kernel's name without its parameter list, demangled where it can be.
std::string short_name(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> plain(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string name = status == 0 && plain ? plain.get() : mangled;
  // "void tb::gpu::kernel<...>(args)": the arguments say nothing the name does not.
  if (const size_t open = name.rfind('('); open != std::string::npos && name.back() == ')')
    name.resize(open);
  if (name.rfind("void ", 0) == 0) name.erase(0, 5);
  if (name.size() > 100) name = name.substr(0, 97) + "...";
  return name;
}

struct Census {
  std::map<std::string, int> types, kernels;
};

void count(cudaGraph_t graph, Census& c) {
  size_t n = 0;
  if (cudaGraphGetNodes(graph, nullptr, &n) != cudaSuccess) return;
  std::vector<cudaGraphNode_t> nodes(n);
  if (n && cudaGraphGetNodes(graph, nodes.data(), &n) != cudaSuccess) return;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType t;
    if (cudaGraphNodeGetType(node, &t) != cudaSuccess) continue;
    if (t == cudaGraphNodeTypeGraph) {
      cudaGraph_t child = nullptr;
      if (cudaGraphChildGraphNodeGetGraph(node, &child) == cudaSuccess) count(child, c);
      continue;
    }
    ++c.types[type_name(t)];
    if (t != cudaGraphNodeTypeKernel) continue;
    cudaKernelNodeParams p{};
    const char* name = nullptr;
    // Kernels launched through the driver API (cuDNN's, cuBLASLt's) have no runtime name,
    // nor, through this query, their launch sizes.
    const std::string label = cudaGraphKernelNodeGetParams(node, &p) == cudaSuccess && p.func &&
                                      cudaFuncGetName(&name, p.func) == cudaSuccess && name
                                  ? short_name(name)
                                  : std::string("(a library's kernel: cuDNN or cuBLASLt)");
    cudaGetLastError();  // a failed query leaves nothing for the next check to trip on
    ++c.kernels[label];
  }
}

}  // namespace

bool graph_census_wanted() {
  static const bool wanted = [] {
    const char* v = std::getenv("TB_GRAPH_CENSUS");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return wanted;
}

bool profile_this_replay() {
  static const long wanted = [] {
    const char* v = std::getenv("TB_PROFILE_REPLAY");
    return v && *v ? std::strtol(v, nullptr, 10) : 0L;
  }();
  static long replays = 0;
  return wanted > 0 && ++replays == wanted;
}

std::string graph_census(cudaGraph_t graph) {
  Census c;
  count(graph, c);
  int total = 0;
  std::string out;
  for (const auto& [type, n] : c.types) {
    total += n;
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, type);
  }
  out = fmt::format("graph census: {} nodes ({})\n", total, out);
  std::vector<std::pair<int, std::string>> kernels;
  for (const auto& [name, n] : c.kernels) kernels.emplace_back(n, name);
  std::sort(kernels.begin(), kernels.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  for (const auto& [n, name] : kernels) out += fmt::format("  {:4d} x {}\n", n, name);
  return out;
}

}  // namespace tb::gpu
