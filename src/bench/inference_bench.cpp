#include "bench/inference_bench.h"

#include "bench/throughput.h"
#include "core/timer.h"
#include "nn/models.h"

namespace tb {

InferenceResult measure_inference(const Classifier& trained, const std::string& model,
                                  int batch_size, int repeats) {
  Backend& backend = trained.graph().backend();
  const Shape in = trained.graph().input_shape();
  ModelInput input{int(in[0]), int(in[1]), int(in[2]), trained.classes()};
  Classifier infer(build_model(model, input), backend, batch_size, false, 0.0f);
  // Same weights and statistics: copy through the host, in the order both graphs list them.
  auto copy = [&](const Tensor& from, const Tensor& to) {
    std::vector<uint8_t> bytes(from.bytes());
    backend.copy_to_host(bytes.data(), from.data, bytes.size());
    backend.copy_from_host(to.data, bytes.data(), bytes.size());
  };
  const auto src_p = trained.graph().parameters(), dst_p = infer.graph().parameters();
  for (size_t i = 0; i < src_p.size(); ++i) copy(src_p[i].value, dst_p[i].value);
  const auto src_b = trained.graph().persistent_buffers(), dst_b = infer.graph().persistent_buffers();
  for (size_t i = 0; i < src_b.size(); ++i) copy(src_b[i].value, dst_b[i].value);

  std::vector<float> images(size_t(batch_size) * in.numel(), 0.25f);
  infer.set_batch(batch_size, images.data(), nullptr);
  auto time_forward = [&](int n, int count) {
    std::vector<double> t;
    for (int i = 0; i < 2; ++i) infer.forward_predict(n, 0);  // warm-up
    backend.synchronize();
    for (int i = 0; i < count; ++i) {
      Stopwatch clock;
      infer.forward_predict(n, 0);
      backend.synchronize();
      t.push_back(clock.seconds());
    }
    return t;
  };
  InferenceResult r;
  const std::vector<double> single = time_forward(1, repeats);
  r.latency_seconds = percentile(single, 0.5);
  r.latency_p90_seconds = percentile(single, 0.9);
  r.batch_size = batch_size;
  r.images_per_second = batch_size / percentile(time_forward(batch_size, std::max(3, repeats / 4)), 0.5);
  return r;
}

nlohmann::json to_json(const InferenceResult& r) {
  return {{"latency_batch1_seconds", r.latency_seconds},
          {"latency_batch1_p90_seconds", r.latency_p90_seconds},
          {"throughput_batch_size", r.batch_size},
          {"throughput_images_per_second", r.images_per_second}};
}

}  // namespace tb
