// Result records: one JSON object per run, appended to a JSON-lines file atomically. The
// schema is documented in docs/results-schema.md; bump kResultsSchemaVersion on any change
// that is not a pure addition.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "train/train_config.h"
#include "train/trainer.h"

namespace tb {

inline constexpr int kResultsSchemaVersion = 1;

nlohmann::json training_record(const TrainConfig& config, const TrainResult& result,
                               const nlohmann::json& environment);

// Appends one record as a line (temp file + rename: never a torn line).
void append_result(const std::string& path, const nlohmann::json& record);

}  // namespace tb
