#include "bench/profile.h"


#include <fmt/format.h>

#include "bench/throughput.h"
#include "core/rng.h"
#include "core/timer.h"
#include "train/optimizer.h"
#include "train/train_step.h"

namespace tb {
namespace {

// Bytes a layer must move at least: every input and output once, parameters once; backward
// reads dy, x and the weights and writes dx and the weight gradients.
void count_bytes(LayerProfile& l, const Graph::NodeInfo& info,
                 const std::vector<Graph::NodeInfo>& all, int batch, size_t esize) {
  double in = 0;
  for (int i : info.inputs) in += double(all[size_t(i)].output_shape.numel());
  const double out = double(info.output_shape.numel());
  const double params = double(info.parameters);
  l.forward_bytes = double(esize) * (batch * (in + out) + params);
  l.backward_bytes = double(esize) * (batch * (2 * out + 2 * in) + 2 * params);
}

}  // namespace

ProfileResult profile_training_step(const ProfileSpec& spec) {
  ProfileResult r;
  r.spec = spec;
  auto backend = make_backend(spec.impl, spec.threads);
  Graph graph = build_model(spec.model, spec.input);
  const int n = spec.batch_size;
  graph.plan(*backend, n, GraphPrecision{DType::f32, precision_dtype(spec.precision)}, true);
  graph.init_parameters(1);
  OptimizerConfig oc;
  oc.momentum = 0.9f;
  Optimizer opt(*backend, graph.parameters(), oc);

  // The loss's buffers, and one random batch uploaded once.
  const int classes = int(graph.output_shape().numel());
  const Device d = backend->device();
  void* labels = backend->allocate(sizeof(int32_t) * n);
  void* probs = backend->allocate(sizeof(float) * n * classes);
  void* losses = backend->allocate(sizeof(float) * n);
  Rng rng(2);
  std::vector<float> x(size_t(graph.input(n).numel()));
  for (float& v : x) v = float(rng.normal());
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int32_t& v : y) v = int32_t(rng.below(uint64_t(classes)));
  if (graph.dtype() == DType::f32) {
    backend->copy_from_host(graph.input(n).data, x.data(), x.size() * sizeof(float));
  } else {  // through an fp32 buffer and the backend's converting copy
    void* staging = backend->allocate(x.size() * sizeof(float));
    backend->copy_from_host(staging, x.data(), x.size() * sizeof(float));
    backend->copy(Tensor(staging, DType::f32, graph.input(n).shape, d), graph.input(n), false);
    backend->synchronize();
    backend->release(staging);
  }
  backend->copy_from_host(labels, y.data(), y.size() * sizeof(int32_t));
  const CrossEntropyParams lp{n, classes, 0.0f};
  const Tensor lab(labels, DType::i32, Shape{n}, d), pr(probs, DType::f32, Shape{n, classes}, d),
      lo(losses, DType::f32, Shape{n}, d);
  auto loss_forward = [&] { backend->cross_entropy_forward(lp, graph.output(n), lab, pr, lo); };
  auto loss_backward = [&] { backend->cross_entropy_backward(lp, pr, lab, graph.output_grad(n)); };

  auto step = [&](uint64_t s) {
    graph.forward(n, true, 1, s);
    loss_forward();
    loss_backward();
    graph.backward(n, 1, s);
    opt.step(0.01f);
  };
  for (int i = 0; i < spec.warmup; ++i) step(uint64_t(i));
  backend->synchronize();

  // End-to-end steps (nothing between the ops) and per-piece passes alternate, so a drift
  // in the machine's speed touches both. On a CPU each piece runs alone, synchronised on both
  // sides, under the host clock. On a device the pieces of a pass are queued back to back,
  // as in a step, with a device timing mark between consecutive pieces, and read after one
  // synchronisation: a host clock around each piece would add a launch and a round trip to
  // every piece, and would stop the library's own kernels of one piece from queueing behind
  // the previous piece's (docs/profiling.md).
  const auto info = graph.describe();
  const size_t nodes = graph.node_count();
  std::vector<std::vector<double>> fwd(nodes), bwd(nodes);
  std::vector<double> steps, loss_t, opt_t;
  auto timed = [&](auto&& f) {
    backend->synchronize();
    Stopwatch c;
    f();
    backend->synchronize();
    return c.seconds();
  };
  const bool device_timer = backend->has_device_timer();
  r.device_timer = device_timer;
  for (int i = 0; i < spec.repeats; ++i) {
    const uint64_t s = uint64_t(100 + i);
    steps.push_back(timed([&] { step(s); }));
    if (!device_timer) {
      for (size_t j = 1; j < nodes; ++j) fwd[j].push_back(timed([&] { graph.forward_node(j, n, true, 1, s); }));
      loss_t.push_back(timed([&] { loss_forward(); loss_backward(); }));
      for (size_t j = nodes; j-- > 1;) bwd[j].push_back(timed([&] { graph.backward_node(j, n, 1, s); }));
      opt_t.push_back(timed([&] { opt.step(0.01f); }));
      continue;
    }
    // Marks: 0 before the first forward piece, then one after every piece, in step order.
    size_t point = 0;
    backend->synchronize();
    backend->mark(point++);
    for (size_t j = 1; j < nodes; ++j) {
      graph.forward_node(j, n, true, 1, s);
      backend->mark(point++);
    }
    loss_forward();
    loss_backward();
    backend->mark(point++);
    for (size_t j = nodes; j-- > 1;) {
      graph.backward_node(j, n, 1, s);
      backend->mark(point++);
    }
    opt.step(0.01f);
    backend->mark(point++);
    backend->synchronize();
    size_t at = 0;
    auto next = [&] {
      const double t = backend->seconds_between(at, at + 1);
      ++at;
      return t;
    };
    for (size_t j = 1; j < nodes; ++j) fwd[j].push_back(next());
    loss_t.push_back(next());
    for (size_t j = nodes; j-- > 1;) bwd[j].push_back(next());
    opt_t.push_back(next());
  }
  r.step_seconds = percentile(steps, 0.5);
  r.loss_seconds = percentile(loss_t, 0.5);
  r.optimizer_seconds = percentile(opt_t, 0.5);
  r.layer_sum_seconds = r.loss_seconds + r.optimizer_seconds;
  for (size_t j = 1; j < nodes; ++j) {
    LayerProfile l;
    l.name = info[j].name;
    l.type = info[j].type;
    l.description = info[j].description;
    l.forward_seconds = percentile(fwd[j], 0.5);
    l.backward_seconds = percentile(bwd[j], 0.5);
    l.forward_flops = info[j].forward_flops * n;
    l.backward_flops = info[j].backward_flops * n;
    count_bytes(l, info[j], info, n, dtype_size(graph.dtype()));
    r.layer_sum_seconds += l.forward_seconds + l.backward_seconds;
    r.layers.push_back(l);
  }
  backend->release(labels);
  backend->release(probs);
  backend->release(losses);
  return r;
}

nlohmann::json to_json(const ProfileResult& r) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerProfile& l : r.layers)
    layers.push_back({{"name", l.name}, {"type", l.type}, {"description", l.description},
                      {"forward_seconds", l.forward_seconds}, {"backward_seconds", l.backward_seconds},
                      {"forward_flops", l.forward_flops}, {"backward_flops", l.backward_flops},
                      {"forward_bytes", l.forward_bytes}, {"backward_bytes", l.backward_bytes}});
  return {{"model", r.spec.model},
          {"input", {r.spec.input.channels, r.spec.input.height, r.spec.input.width}},
          {"impl", r.spec.impl}, {"threads", r.spec.threads}, {"batch_size", r.spec.batch_size},
          {"repeats", r.spec.repeats}, {"layers", layers}, {"loss_seconds", r.loss_seconds},
          {"optimizer_seconds", r.optimizer_seconds}, {"layer_sum_seconds", r.layer_sum_seconds},
          {"step_seconds", r.step_seconds},
          {"piece_timing", r.device_timer ? "device events, pieces queued back to back"
                                          : "host clock, each piece synchronised alone"}};
}

std::string profile_table(const ProfileResult& r) {
  std::string out = fmt::format("{:<26} {:<16} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}\n", "layer",
                                "type", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "fwd GB/s",
                                "bwd GB/s", "% step");
  auto rate = [](double amount, double s) { return s > 0 ? amount / s / 1e9 : 0.0; };
  for (const LayerProfile& l : r.layers) {
    const double share = 100.0 * (l.forward_seconds + l.backward_seconds) / r.layer_sum_seconds;
    out += fmt::format("{:<26} {:<16} {:>9.3f} {:>9.3f} {:>8.1f} {:>8.1f} {:>8.1f} {:>8.1f} {:>5.1f}%\n",
                       l.name.substr(0, 26), l.type, 1e3 * l.forward_seconds,
                       1e3 * l.backward_seconds, rate(l.forward_flops, l.forward_seconds),
                       rate(l.backward_flops, l.backward_seconds), rate(l.forward_bytes, l.forward_seconds),
                       rate(l.backward_bytes, l.backward_seconds), share);
  }
  out += fmt::format("{:<26} {:<16} {:>19.3f}\n", "loss", "cross_entropy", 1e3 * r.loss_seconds);
  out += fmt::format("{:<26} {:<16} {:>19.3f}\n", "optimizer", "sgd_update", 1e3 * r.optimizer_seconds);
  const double diff = 100.0 * (r.layer_sum_seconds - r.step_seconds) / r.step_seconds;
  out += fmt::format("\nsum of the pieces {:.3f} ms, measured step {:.3f} ms (median of {}): the sum "
                     "is {:+.1f}% off the step{}\n",
                     1e3 * r.layer_sum_seconds, 1e3 * r.step_seconds, r.spec.repeats, diff,
                     std::abs(diff) <= 10 ? " (within 10%)" : " (more than 10%: see docs/profiling.md)");
  return out;
}

}  // namespace tb
