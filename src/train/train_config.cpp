#include "train/train_config.h"

namespace tb {

double effective_lr(const TrainConfig& c) {
  if (c.lr > 0) return c.lr;
  return c.optimizer.kind == "sgd" ? 0.05 : 0.001;
}

nlohmann::json run_identity(const TrainConfig& c) {
  return {{"model", c.model},
          {"dataset", c.dataset},
          {"precision", c.precision},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"limit", c.limit},
          {"max_steps", c.max_steps},
          {"split", c.split},
          {"validation_fraction", c.validation_fraction},
          {"augment", c.augment},
          {"seed", c.seed},
          {"optimizer", c.optimizer.kind},
          {"momentum", c.optimizer.momentum},
          {"nesterov", c.optimizer.nesterov},
          {"weight_decay", c.optimizer.weight_decay},
          {"max_grad_norm", c.optimizer.max_grad_norm},
          {"beta1", c.optimizer.beta1},
          {"beta2", c.optimizer.beta2},
          {"eps", c.optimizer.eps},
          {"lr", effective_lr(c)},
          {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps},
          {"one_cycle_pct_start", c.one_cycle_pct_start},
          {"step_gamma", c.step_gamma},
          {"step_size_epochs", c.step_size_epochs},
          {"label_smoothing", c.label_smoothing}};
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j = run_identity(c);
  j["impl"] = c.impl;
  j["threads"] = c.threads;
  j["gpu_data"] = c.gpu_data;
  j["eval_batch_size"] = c.eval_batch_size;
  j["data_dir"] = c.data_dir;
  j["checkpoint"] = c.checkpoint;
  j["checkpoint_every"] = c.checkpoint_every;
  j["resume"] = c.resume;
  return j;
}

}  // namespace tb
