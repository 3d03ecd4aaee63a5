#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <ostream>

#include "core/interrupt.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/data_api.h"
#include "nn/models.h"
#include "train/checkpoint.h"
#include "train/checkpoint_state.h"
#include "train/classifier.h"
#include "ops/cuda/step_control.h"
#include "train/device_epoch.h"
#include "train/train_step.h"
#include "train/run_layout.h"

namespace tb {

struct Trainer::State {
  std::unique_ptr<Backend> backend;
  DatasetFiles files;
  Splits splits;
  Normalization norm;
  Augmentation aug;
  std::unique_ptr<Classifier> model;
  std::unique_ptr<Optimizer> optimizer;
  // GPU backends: the device-driven step (batches gathered on the GPU, CUDA graphs).
  GpuStepControl* gpu = nullptr;
  std::unique_ptr<TrainStep> step;
  ScheduleConfig schedule;
  std::vector<float> images;
  std::vector<int32_t> labels, predicted;
  std::vector<int64_t> order;
  int64_t steps_per_epoch = 0, total_steps = 0;
  TrainProgress progress;
};

Trainer::Trainer(TrainConfig config, std::ostream& log) : config_(std::move(config)), log_(log) {}
Trainer::~Trainer() = default;

namespace {

void validate(const TrainConfig& c) {
  TB_INPUT_CHECK(c.epochs >= 1, "--epochs must be at least 1, got {}", c.epochs);
  TB_INPUT_CHECK(c.batch_size >= 1 && c.batch_size <= 65536,
                 "--batch-size must be in [1, 65536], got {}", c.batch_size);
  TB_INPUT_CHECK(c.limit >= 0, "--limit must be >= 0, got {}", c.limit);
  TB_INPUT_CHECK(c.max_steps >= 0, "--max-steps must be >= 0, got {}", c.max_steps);
  TB_INPUT_CHECK(c.checkpoint_every >= 0, "--checkpoint-every must be >= 0");
  TB_INPUT_CHECK(c.precision == "fp32" || c.precision == "bf16" || c.precision == "fp16",
                 "unknown --precision '{}' (fp32, bf16, fp16)", c.precision);
  check_augment_option(c.augment);
  TB_INPUT_CHECK(!c.resume || !c.checkpoint.empty(), "--resume needs --checkpoint PATH");
  TB_INPUT_CHECK(c.lr >= 0, "--lr must be positive, got {}", c.lr);
}

std::string percent(double f) { return fmt::format("{:.2f}%", 100.0 * f); }

}  // namespace

TrainResult Trainer::run() {
  validate(config_);
  TB_INPUT_CHECK(config_.precision == "fp32" || config_.impl == "cuda" || config_.impl == "cudnn",
                 "--precision {} needs a GPU backend (--impl cuda or cudnn); '{}' trains in fp32",
                 config_.precision, config_.impl);
  state_ = std::make_unique<State>();
  State& s = *state_;
  Stopwatch session;

  s.backend = make_backend(config_.impl, config_.threads);
  s.files = load_dataset(config_.dataset, config_.data_dir);
  s.splits = make_splits(s.files, SplitSpec{config_.split, config_.validation_fraction}, config_.seed);
  limit_splits(s.splits, config_.limit);
  TB_INPUT_CHECK(s.splits.train.size() > 0, "the training split of {} is empty", config_.dataset);
  s.norm = compute_normalization(s.splits.train);
  s.aug = augmentation_for(config_, s.files.train.channels);

  const Dataset& d = s.files.train;
  ModelInput input{d.channels, d.height, d.width, d.classes};
  s.model = std::make_unique<Classifier>(build_model(config_.model, input), *s.backend,
                                         config_.batch_size, true, config_.label_smoothing,
                                         precision_dtype(config_.precision));
  Graph& graph = s.model->graph();
  graph.init_parameters(config_.seed);
  s.optimizer = std::make_unique<Optimizer>(*s.backend, graph.parameters(), config_.optimizer);

  // Steps and schedule come from run_layout.h, which the PyTorch peer's run plan shares.
  const RunLayout layout = layout_run(config_, s.splits.train.size());
  s.steps_per_epoch = layout.steps_per_epoch;
  s.total_steps = layout.total_steps;
  s.schedule = layout.schedule;
  const bool cycle_momentum = layout.cycle_momentum;

  result_ = TrainResult{};
  result_.class_names = d.class_names;
  result_.data = {{"source", d.source},
                  {"train", s.splits.train.size()},
                  {"validation", s.splits.validation.size()},
                  {"test", s.splits.test.size()},
                  {"augmentation", s.aug.enabled},
                  {"normalization", {{"mean", s.norm.mean}, {"std", s.norm.std}}}};
  result_.model = {{"name", config_.model},
                   {"input", {d.channels, d.height, d.width}},
                   {"parameters", graph.parameter_count()},
                   {"forward_flops_per_image", graph.forward_flops_per_item()},
                   {"training_flops_per_image", graph.training_flops_per_item()},
                   {"planned_bytes", graph.memory().total_bytes()}};

  if (config_.resume) {
    CheckpointData ck = load_checkpoint(config_.checkpoint);
    restore_training_state(ck, config_, graph, *s.optimizer, s.progress);
    result_.epochs = s.progress.history;
    log_ << fmt::format("resumed from {} at epoch {}, step {} of {}\n", config_.checkpoint,
                        s.progress.epoch + 1, s.progress.global_step, s.total_steps);
  }

  bool streamed = false;  // GPU: batches streamed from the host instead of a resident copy
  auto device_setup = [&] {
    DeviceEpochSetup setup;
    setup.train = &s.splits.train;
    setup.batch = config_.batch_size;
    setup.steps_per_epoch = s.steps_per_epoch;
    setup.total_steps = s.total_steps;
    setup.seed = config_.seed;
    setup.schedule = &s.schedule;
    setup.streamed = streamed;
    return setup;
  };
  TB_INPUT_CHECK(config_.gpu_data == "auto" || config_.gpu_data == "resident" ||
                     config_.gpu_data == "stream",
                 "gpu_data is auto, resident or stream, not '{}'", config_.gpu_data);
  s.gpu = TrainStep::gpu_control(*s.backend);
  if (s.gpu) {
    // The training images live on the GPU when they take at most half of its free memory
    // (MNIST, Fashion-MNIST and CIFAR-10 all do); otherwise batches are streamed.
    const Dataset& td = *s.splits.train.data;
    const size_t bytes = td.images.size() + td.labels.size() * sizeof(int32_t);
    const size_t free = s.gpu->device_free_bytes();
    streamed = config_.gpu_data == "stream" || (config_.gpu_data == "auto" && bytes > free / 2);
    TB_INPUT_CHECK(config_.gpu_data != "resident" || bytes <= free,
                   "--gpu-data resident: the training images take {:.0f} MiB, the GPU has {:.0f} "
                   "MiB free; use --gpu-data stream", bytes / 1048576.0, free / 1048576.0);
    log_ << (streamed ? fmt::format("data: streamed to the GPU from pinned host memory, two "
                                    "batches in flight ({:.0f} MiB of images, {:.0f} MiB free)\n",
                                    bytes / 1048576.0, free / 1048576.0)
                      : fmt::format("data: resident on the GPU ({:.0f} MiB of images)\n",
                                    bytes / 1048576.0));
  }
  if (s.gpu) {
    s.step = std::make_unique<TrainStep>(*s.model, *s.optimizer, config_.seed);
    TrainStep::DeviceOptions o;
    o.cuda_graph = config_.cuda_graph;
    o.dynamic_loss_scale = config_.precision == "fp16";
    o.gather = true;
    o.augment = s.aug.enabled;
    o.crop_pad = s.aug.crop_padding;
    o.flip = s.aug.horizontal_flip;
    const float momentum = float(config_.optimizer.kind == "sgd" ? config_.optimizer.momentum
                                                                 : config_.optimizer.beta1);
    start_device_training(
        *s.step, *s.gpu, device_setup(), o, s.norm, s.progress.global_step,
        [&](int64_t i) { return float(learning_rate_at(s.schedule, i)); },
        [&](int64_t i) {
          return cycle_momentum ? float(one_cycle_momentum_at(s.schedule, i)) : momentum;
        });
  }

  log_ << fmt::format(
      "trainbench: {} on {} (train {} / validation {} / test {}), impl {}, batch {}, {} lr {} "
      "({}), seed {}\n",
      config_.model, config_.dataset, s.splits.train.size(), s.splits.validation.size(),
      s.splits.test.size(), s.backend->name(), config_.batch_size, config_.optimizer.kind,
      s.schedule.base_lr, config_.schedule, config_.seed);
  log_ << fmt::format("data: {}\n", d.source);
  log_ << fmt::format("model: {} parameters, {:.2f} MFLOP forward per image, {:.1f} MiB planned\n",
                      graph.parameter_count(), graph.forward_flops_per_item() / 1e6,
                      graph.memory().total_bytes() / 1048576.0);
  log_.flush();

  const int batch = config_.batch_size;
  s.images.resize(size_t(batch) * d.image_numel());
  s.labels.resize(batch);
  s.predicted.resize(batch);
  const bool show_progress = config_.progress && isatty(fileno(stderr));

  auto save = [&](const char* why) {
    if (config_.checkpoint.empty()) return;
    TrainProgress p = s.progress;
    p.elapsed_seconds += session.seconds();
    save_checkpoint(config_.checkpoint,
                    capture_training_state(config_, graph, *s.optimizer, p, s.norm, d));
    log_ << fmt::format("checkpoint saved to {} ({})\n", config_.checkpoint, why);
    log_.flush();
  };

  TrainProgress& p = s.progress;
  bool stopped = false;
  std::vector<double> first_steps;  // GPU: the first two steps alone (set-up, capture)
  while (p.epoch < config_.epochs && p.global_step < s.total_steps && !stopped) {
    if (s.gpu) {
      DeviceEpochHooks hooks;
      hooks.should_stop = [&] { return stop_requested_ || interrupt_requested(); };
      hooks.on_step = on_step;
      hooks.checkpoint_due = [&](int64_t step) {
        return config_.checkpoint_every > 0 && step % config_.checkpoint_every == 0 &&
               p.step_in_epoch < s.steps_per_epoch;
      };
      hooks.save_periodic = [&] { save("periodic"); };
      if (show_progress)
        hooks.progress = [&](const TrainProgress& q) {
          fmt::print(stderr, "\r  epoch {}/{} {:5.1f}%  loss {:.4f}  {:.0f} img/s   ", q.epoch + 1,
                     config_.epochs, 100.0 * double(q.step_in_epoch) / s.steps_per_epoch,
                     q.loss_sum / std::max<int64_t>(q.seen, 1),
                     q.seen / std::max(1e-9, q.compute_seconds));
        };
      hooks.last_good_checkpoint = [&] { return config_.checkpoint; };
      hooks.first_step_seconds = &first_steps;
      try {
        stopped = !run_device_epoch(*s.step, *s.gpu, device_setup(), p, hooks);
      } catch (const DivergedError& e) {
        result_.status = "failed";
        result_.error = e.what();
        throw;
      }
    }
    epoch_order(s.order, s.splits.train.size(), config_.seed, p.epoch);
    Stopwatch progress_clock;
    while (!s.gpu && p.step_in_epoch < s.steps_per_epoch && p.global_step < s.total_steps) {
      if (stop_requested_ || interrupt_requested()) {
        stopped = true;
        break;
      }
      const int64_t begin = p.step_in_epoch * batch;
      const int n = int(std::min<int64_t>(batch, s.splits.train.size() - begin));
      Stopwatch data_clock;
      gather_batch(s.splits.train, s.order.data() + begin, n, s.norm, s.aug, config_.seed,
                   uint64_t(p.epoch), s.images.data(), s.labels.data());
      p.data_seconds += data_clock.seconds();

      Stopwatch compute_clock;
      s.model->set_batch(n, s.images.data(), s.labels.data());
      const double loss = s.model->forward_loss(n, true, config_.seed, uint64_t(p.global_step));
      if (!std::isfinite(loss)) {
        result_.status = "failed";
        result_.error = fmt::format(
            "the loss became {} at step {} (epoch {}, batch {}); training stopped{}",
            std::isnan(loss) ? "NaN" : "infinite", p.global_step + 1, p.epoch + 1,
            p.step_in_epoch + 1,
            config_.checkpoint.empty() ? ""
                                       : fmt::format("; the last good checkpoint is {}",
                                                     config_.checkpoint));
        throw DivergedError(result_.error);
      }
      s.model->predictions(n, s.predicted.data());
      for (int i = 0; i < n; ++i) p.correct += s.predicted[i] == s.labels[i];
      s.model->backward(n, config_.seed, uint64_t(p.global_step));
      p.lr = learning_rate_at(s.schedule, p.global_step);
      // One-cycle also cycles momentum (beta1 for Adam), as PyTorch's OneCycleLR does.
      if (cycle_momentum)
        s.optimizer->set_momentum(float(one_cycle_momentum_at(s.schedule, p.global_step)));
      s.optimizer->step(float(p.lr));
      s.backend->synchronize();
      p.compute_seconds += compute_clock.seconds();

      p.loss_sum += loss * n;
      p.seen += n;
      ++p.step_in_epoch;
      ++p.global_step;
      if (on_step) on_step(p.global_step);
      if (config_.checkpoint_every > 0 && p.global_step % config_.checkpoint_every == 0 &&
          p.step_in_epoch < s.steps_per_epoch)
        save("periodic");
      if (show_progress && progress_clock.seconds() > 0.5) {
        progress_clock.restart();
        const double frac = double(p.step_in_epoch) / s.steps_per_epoch;
        const double rate = p.seen / std::max(1e-9, p.data_seconds + p.compute_seconds);
        const double eta = (s.steps_per_epoch - p.step_in_epoch) * batch / std::max(rate, 1e-9);
        fmt::print(stderr, "\r  epoch {}/{} {:5.1f}%  loss {:.4f}  {:.0f} img/s  ETA {:.0f} s   ",
                   p.epoch + 1, config_.epochs, 100 * frac, p.loss_sum / p.seen, rate, eta);
      }
    }
    if (show_progress) fmt::print(stderr, "\r{:70}\r", "");
    if (stopped) break;

    // The epoch (or the run, at --max-steps) ended: evaluate and log.
    Stopwatch eval_clock;
    EpochMetrics m;
    m.epoch = p.epoch + 1;
    m.steps = p.step_in_epoch;
    m.images = p.seen;
    m.lr = p.lr;
    m.train_loss = p.seen ? p.loss_sum / p.seen : 0.0;
    m.train_accuracy = p.seen ? double(p.correct) / p.seen : 0.0;
    m.data_seconds = p.data_seconds;
    m.compute_seconds = p.compute_seconds;
    m.images_per_second = p.seen / std::max(1e-9, p.data_seconds + p.compute_seconds);
    if (s.splits.validation.size() > 0) {
      EvalResult v = evaluate(s.splits.validation);
      m.val_loss = v.loss;
      m.val_accuracy = v.accuracy;
    }
    m.eval_seconds = eval_clock.seconds();
    m.elapsed_seconds = p.elapsed_seconds + session.seconds();
    const std::string validation =
        s.splits.validation.size() > 0
            ? fmt::format("validation {:.4f} / {}  ", m.val_loss, percent(m.val_accuracy))
            : std::string();
    log_ << fmt::format("epoch {}/{}  loss {:.4f}  train {}  {}{:.0f} img/s  lr {:.3g}  {:.1f} s\n",
                        m.epoch, config_.epochs, m.train_loss, percent(m.train_accuracy),
                        validation, m.images_per_second, m.lr, m.elapsed_seconds);
    if (first_steps.size() == 2 && !result_.model.contains("first_step_seconds")) {
      // What a GPU run pays once, inside its first epoch's time: the first step chooses
      // convolution algorithms and loads kernels, the second is captured as a CUDA graph.
      result_.model["first_step_seconds"] = first_steps;
      const GpuStepControl::AlgorithmSearch search = s.gpu->algorithm_search();
      result_.model["algorithm_search_seconds"] = search.seconds;
      result_.model["algorithms_measured"] = search.measured;
      result_.model["algorithms_cached"] = search.cached;
      log_ << fmt::format(
          "first steps: {:.3f} s (set-up: {:.3f} s choosing convolution "
          "algorithms, then the libraries' and kernels' loading), {:.3f} s (graph "
          "capture); included in epoch 1's time (TB_TRACE_FIRST_PASS=1 shows "
          "which layers pay it)\n",
          first_steps[0], search.seconds, first_steps[1]);
      if (search.measured + search.cached > 0)
        log_ << fmt::format(
            "convolution algorithms: {} measured, {} from the cache{}\n", search.measured,
            search.cached,
            search.cache_path.empty() ? " (off)"
                                      : fmt::format(" {} (TB_ALGO_CACHE=off to measure every "
                                                    "time)", search.cache_path));
    }
    log_.flush();
    p.history.push_back(m);
    result_.epochs = p.history;
    p.start_next_epoch();
    if (p.epoch < config_.epochs && p.global_step < s.total_steps) save("end of epoch");
  }

  for (const EpochMetrics& m : p.history) {
    result_.steps += m.steps;
    result_.images += m.images;
    result_.train_seconds += m.data_seconds + m.compute_seconds;
  }
  if (stopped) {
    // Keep what the interrupted epoch did so far in the checkpoint, then stop.
    save("interrupted");
    result_.status = "interrupted";
    result_.total_seconds = p.elapsed_seconds + session.seconds();
    log_ << fmt::format("interrupted at step {} of {}{}\n", p.global_step, s.total_steps,
                        config_.checkpoint.empty()
                            ? " (no --checkpoint given: progress is lost)"
                            : "; continue with the same command and --resume");
    return result_;
  }

  save("final");
  if (s.splits.test.size() > 0) {
    result_.test = evaluate(s.splits.test, kResultSamples);
    result_.tested = true;
    log_ << fmt::format("test: loss {:.4f}  accuracy {} ({} images)\n", result_.test.loss,
                        percent(result_.test.accuracy), result_.test.count);
  }
  result_.total_seconds = p.elapsed_seconds + session.seconds();
  return result_;
}

EvalResult Trainer::evaluate(const Subset& subset, int keep_samples) {
  State& s = *state_;
  const int batch = config_.batch_size;
  const int classes = s.model->classes();
  EvalResult r;
  r.confusion.assign(size_t(classes) * classes, 0);
  std::vector<int64_t> positions(static_cast<size_t>(batch));
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < subset.size(); begin += batch) {
    const int n = int(std::min<int64_t>(batch, subset.size() - begin));
    std::iota(positions.begin(), positions.begin() + n, begin);
    gather_batch(subset, positions.data(), n, s.norm, Augmentation{}, config_.seed, 0,
                 s.images.data(), s.labels.data());
    s.model->set_batch(n, s.images.data(), s.labels.data());
    loss_sum += s.model->forward_loss(n, false, config_.seed, 0) * n;
    s.model->predictions(n, s.predicted.data());
    for (int i = 0; i < n; ++i) {
      correct += s.predicted[i] == s.labels[i];
      ++r.confusion[size_t(s.labels[i]) * classes + s.predicted[i]];
      if (begin + i < keep_samples) {
        const uint8_t* image = subset.data->image(subset.indices[size_t(begin + i)]);
        r.samples.push_back({begin + i, s.labels[i], s.predicted[i],
                             {image, image + subset.data->image_numel()}});
      }
    }
  }
  r.count = subset.size();
  r.loss = r.count ? loss_sum / r.count : 0.0;
  r.accuracy = r.count ? double(correct) / r.count : 0.0;
  return r;
}

const Classifier& Trainer::model() const {
  TB_CHECK(state_ && state_->model, "no model yet");
  return *state_->model;
}

std::vector<float> Trainer::parameters_host() const {
  TB_CHECK(state_ && state_->model, "no model yet");
  std::vector<float> out;
  const Graph& g = state_->model->graph();
  auto append = [&](const Tensor& t) {
    const size_t at = out.size();
    out.resize(at + size_t(t.numel()));
    state_->backend->copy_to_host(out.data() + at, t.data, t.bytes());
  };
  for (const ParamRef& p : g.parameters()) append(p.value);
  for (const StateRef& b : g.persistent_buffers()) append(b.value);
  return out;
}

}  // namespace tb
