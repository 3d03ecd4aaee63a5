// `trainbench backends`: which implementations this build has and whether each can run here.
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "ops/backend.h"

namespace tb {

void add_backends_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("backends", "List the implementations (--impl values) of this "
                                             "build and whether each runs on this machine.");
  cmd->callback([]() {
    for (const auto& name : backend_names()) {
      std::string status = "available";
      try {
        make_backend(name, 1);
      } catch (const InputError& e) {
        status = std::string("unavailable: ") + e.what();
      }
      fmt::print("{:<8} {}\n         {}\n", name, backend_description(name), status);
    }
  });
}

}  // namespace tb
