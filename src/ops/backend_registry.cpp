// The backends this build has, by the name --impl takes. Backends not in this build (or that
// cannot run on this machine) are refused with the reason.
#include <fmt/format.h>

#include "ops/backend.h"
#include "ops/ref/ref_backend.h"

namespace tb {

std::vector<std::string> backend_names() { return {"ref"}; }

std::string backend_description(const std::string& name) {
  if (name == "ref") return "plain-loop reference kernels, one thread: the oracle the others are tested against";
  return "";
}

std::unique_ptr<Backend> make_backend(const std::string& name, int threads) {
  if (name == "ref") return make_ref_backend();
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
