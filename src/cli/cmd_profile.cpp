// `trainbench profile`: per-layer forward and backward time of one training step.
#include <fmt/format.h>

#include "bench/profile.h"
#include "bench/throughput.h"
#include "cli/commands.h"
#include "core/atomic_file.h"

namespace tb {

void add_profile_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("profile", "Per-layer forward and backward time of a training step, "
                                            "with FLOPs, bytes moved and achieved rates, checked "
                                            "against the measured end-to-end step.");
  auto spec = std::make_shared<ProfileSpec>();
  auto input = std::make_shared<std::string>();
  auto json_out = std::make_shared<std::string>();
  cmd->add_option("--model", spec->model, "Model")->capture_default_str();
  cmd->add_option("--input", *input, "Input CxHxW (default: the model's canonical input)");
  cmd->add_option("--impl", spec->impl, "Implementation")->capture_default_str();
  cmd->add_option("--threads", spec->threads, "CPU threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--batch-size", spec->batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--precision", spec->precision, "fp32, bf16 or fp16 (GPU backends)")
      ->capture_default_str();
  cmd->add_option("--warmup", spec->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--repeats", spec->repeats, "Timed repetitions (medians are reported)")->capture_default_str();
  cmd->add_option("--json", *json_out, "Also write the profile as JSON to FILE");
  cmd->callback([spec, input, json_out]() {
    ProfileSpec s = *spec;
    s.input = default_input(s.model);
    if (!input->empty()) {
      int c = 0, h = 0, w = 0;
      char x1 = 0, x2 = 0;
      TB_INPUT_CHECK(std::sscanf(input->c_str(), "%d%c%d%c%d", &c, &x1, &h, &x2, &w) == 5 &&
                         x1 == 'x' && x2 == 'x' && c > 0 && h > 0 && w > 0,
                     "--input takes CxHxW such as 3x32x32, got '{}'", *input);
      s.input = {c, h, w, 10};
    }
    TB_INPUT_CHECK(s.batch_size > 0 && s.repeats > 0 && s.warmup >= 0,
                   "--batch-size and --repeats must be positive");
    fmt::print("profiling {} ({}x{}x{}), impl {}, batch {}, {} repeats\n\n", s.model,
               s.input.channels, s.input.height, s.input.width, s.impl, s.batch_size, s.repeats);
    const ProfileResult r = profile_training_step(s);
    fmt::print("{}", profile_table(r));
    if (!json_out->empty()) write_file_atomic(*json_out, to_json(r).dump(2) + "\n");
  });
}

}  // namespace tb
