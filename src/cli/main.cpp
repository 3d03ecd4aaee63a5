// trainbench: trains image classifiers from scratch on CPUs and GPUs and measures, side by
// side, what each device and implementation buys.
#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/peer_commands.h"
#include "core/build_info.h"
#include "core/error.h"

int main(int argc, char** argv) {
  CLI::App app{
      "trainbench " TB_VERSION ": train image classifiers from scratch on CPU and GPU, and "
      "measure honestly what each device and implementation buys.\n"
      "Run `trainbench SUBCOMMAND --help` for the options of each subcommand."};
  app.require_subcommand(1);
  app.set_version_flag("--version",
                       std::string("trainbench " TB_VERSION " (") + tb::build_commit() + ")");
  tb::add_bench_command(app);
  tb::add_train_command(app);
  tb::add_sweep_command(app);
  tb::add_profile_command(app);
  tb::add_predict_command(app);
  tb::add_evaluate_command(app);
  tb::add_export_weights_command(app);
  tb::add_golden_export_command(app);
  tb::add_throughput_command(app);
  tb::add_models_command(app);
  tb::add_backends_command(app);
  tb::add_data_command(app);
  tb::add_report_command(app);
  tb::add_export_csv_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const tb::ExitRequest& e) {
    return e.code;
  } catch (const tb::InputError& e) {
    fmt::print(stderr, "trainbench: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "trainbench: error: out of memory (try a smaller --batch-size or model)\n");
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "trainbench: internal error: {}\n", e.what());
    return 1;
  }
  return 0;
}
