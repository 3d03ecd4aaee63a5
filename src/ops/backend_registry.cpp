// The backends this build has, by the name --impl takes. Backends not in this build (or that
// cannot run on this machine) are refused with the reason.
#include <fmt/format.h>

#include "ops/backend.h"
#include "ops/cpu/cpu_backend.h"
#include "ops/ref/ref_backend.h"
#ifdef TB_HAVE_ONEDNN
#include "ops/onednn/onednn_backend.h"
#endif
#ifdef TB_HAVE_CUDA
#include "ops/cuda/cuda_backend.h"
#include "ops/cudnn/cudnn_backend.h"
#endif

namespace tb {

std::vector<std::string> backend_names() {
  std::vector<std::string> names{"ref", "cpu"};
#ifdef TB_HAVE_ONEDNN
  names.push_back("onednn");
#endif
#ifdef TB_HAVE_CUDA
  names.push_back("cuda");
  names.push_back("cudnn");
#endif
  return names;
}

std::string backend_description(const std::string& name) {
  if (name == "ref") return "plain-loop reference kernels, one thread: the oracle the others are tested against";
  if (name == "cpu")
    return "our kernels: packed AVX-512/AVX2 GEMM, convolutions as GEMMs over cache-sized im2col "
           "chunks of images (3x3 stride-1 ones through Winograd on AVX-512: TB_CPU_WINOGRAD), "
           "threads";
#ifdef TB_HAVE_ONEDNN
  if (name == "onednn") return "oneDNN (Intel's vendor CPU library) primitives, created once and cached";
#endif
#ifdef TB_HAVE_CUDA
  if (name == "cuda")
    return "our own CUDA kernels: implicit-GEMM convolutions on tensor cores (bf16/fp16) or FMA "
           "(fp32), channels-last, deterministic reductions";
  if (name == "cudnn")
    return "cuDNN 9 convolutions (algorithms chosen by measurement) and cuBLASLt linear layers, "
           "channels-last, with our kernels for the other ops";
#endif
  return "";
}

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
  if (name == "ref") return make_ref_backend();
  if (name == "cpu") return make_cpu_backend(threads);
#ifdef TB_HAVE_ONEDNN
  if (name == "onednn") return make_onednn_backend(threads);
#endif
#ifdef TB_HAVE_CUDA
  if (name == "cuda") return make_cuda_backend();
  if (name == "cudnn") return make_cudnn_backend();
#endif
  static const char* planned[] = {"cpu", "onednn", "cuda", "cudnn", "pytorch"};
  for (const char* p : planned)
    if (name == p)
      throw InputError(fmt::format("--impl {} is not part of this build of trainbench (available: "
                                   "ref)", name));
  std::string known;
  for (const auto& n : backend_names()) known += (known.empty() ? "" : ", ") + n;
  throw InputError(fmt::format("unknown --impl '{}' (available: {})", name, known));
}

}  // namespace tb
