// Subcommands of the trainbench executable. Each adds itself to the app with its options
// and a callback; main() maps errors to exit codes.
#pragma once
#include <CLI/CLI.hpp>

namespace tb {

// Exit codes: 0 success, 1 bad input or a failed run, 2 usage error, 130 interrupted.
inline constexpr int kExitInterrupted = 130;

// Thrown by a subcommand that wants a specific exit code after printing its own message.
struct ExitRequest {
  int code;
};

void add_train_command(CLI::App& app);
void add_models_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_backends_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_export_csv_command(CLI::App& app);
void add_throughput_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
void add_profile_command(CLI::App& app);

}  // namespace tb
