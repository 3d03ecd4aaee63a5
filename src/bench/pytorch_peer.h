// PyTorch as a peer: finds a Python that can import torch, and runs
// peers/pytorch/train.py on a run plan (src/bench/run_plan.h), so that a PyTorch row trains on
// the same data, split, batch order, schedule and initial weights as trainbench's rows and
// lands in the same results schema (config.impl "pytorch"). See docs/pytorch-peer.md.
#pragma once
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/train_config.h"

namespace tb {

struct PythonProbe {
  std::optional<std::string> python;  // the first interpreter that imports torch and numpy
  std::string torch_version;          // its torch.__version__
  bool cuda = false;                  // torch.cuda.is_available() there
  std::vector<std::string> tried;     // every interpreter tried, with why it was not taken
};

// Tries $TRAINBENCH_PYTHON, then python3 (PATH), then /usr/bin/python3, each with
// `-c "import torch, numpy; print(torch.__version__)"`. Probing starts Python (a second or
// two), so the answer is cached for the life of the process.
const PythonProbe& probe_python_with_torch();
std::optional<std::string> find_python_with_torch();

// "pytorch rows skipped: no Python with torch found (tried ...); install python3-torch".
std::string pytorch_unavailable_message();

// peers/pytorch/<script>: from $TRAINBENCH_PEERS_DIR, beside the executable (../peers,
// ../share/trainbench/peers) or in the source tree this build came from. Throws InputError
// naming the places looked at.
std::string find_peer_script(const std::string& script);

struct PytorchPeerOptions {
  std::string device = "auto";  // auto (cuda when PyTorch sees a GPU), cpu, cuda
  bool compile = false;         // torch.compile (PyTorch 2 only; the peer refuses on 1.13)
  bool channels_last = false;
  // torch.backends.cudnn.benchmark: off by default; see docs/pytorch-peer.md.
  bool cudnn_benchmark = false;
  std::string save_weights;     // also write the trained weights here (weights format)
};

// Writes the run plan of `config` to plan_path (initial weights beside it), runs the peer on
// it with config.threads and config.precision, and returns its record (schema
// "trainbench.run", config.impl "pytorch"; status "completed" or "failed"). The peer's log
// lines go to `log` as they come. Throws InputError with pytorch_unavailable_message() when
// no Python with torch is found, and when the peer fails without a record (its last output
// in the message). A Ctrl-C stops the peer; the record then says "interrupted".
nlohmann::json run_pytorch_peer(const TrainConfig& config, const std::string& plan_path,
                                const PytorchPeerOptions& options, std::ostream& log);
// The same with the plan (and its initial weights) in a temporary folder, removed after.
// What `train --impl pytorch` and bench rows use; threads 0 = all cores, as for our rows.
nlohmann::json run_pytorch_peer(const TrainConfig& config, const PytorchPeerOptions& options,
                                std::ostream& log);

}  // namespace tb
