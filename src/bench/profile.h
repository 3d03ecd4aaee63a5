// Per-layer timing of a training step (like `caffe time`, without its double counting): each
// layer's forward and backward is timed alone, with the backend synchronised before and after,
// and reported with its FLOPs, bytes moved and achieved rates. The sum is checked against an
// end-to-end step timed without the per-layer synchronisation, so a reader can see how much
// the per-layer view leaves out (launch overlap, the loss, the optimizer).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/models.h"

namespace tb {

struct ProfileSpec {
  std::string model = "resnet18";
  ModelInput input{3, 32, 32, 10};
  std::string impl = "ref";
  int threads = 0;
  int batch_size = 64;
  std::string precision = "fp32";  // bf16 / fp16 activations on GPU backends
  int warmup = 2;
  int repeats = 5;
};

struct LayerProfile {
  std::string name, type, description;
  double forward_seconds = 0, backward_seconds = 0;  // medians over repeats
  double forward_flops = 0, backward_flops = 0;      // for the whole batch
  double forward_bytes = 0, backward_bytes = 0;      // counted once each, for the whole batch
};

struct ProfileResult {
  ProfileSpec spec;
  std::vector<LayerProfile> layers;
  double loss_seconds = 0;       // softmax cross-entropy forward + backward
  double optimizer_seconds = 0;  // SGD with momentum over every parameter
  double layer_sum_seconds = 0;  // layers + loss + optimizer
  double step_seconds = 0;       // end to end, median, no per-layer synchronisation
  bool device_timer = false;     // pieces timed by device events (GPU) rather than the host clock
};

ProfileResult profile_training_step(const ProfileSpec& spec);
nlohmann::json to_json(const ProfileResult& r);
// The printed table: one line per layer and the check of the sum against the step.
std::string profile_table(const ProfileResult& r);

}  // namespace tb
