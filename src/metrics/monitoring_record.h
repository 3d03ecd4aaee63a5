// The monitors' results as fields of a results record (docs/results-schema.md):
//   record["system"]     SystemReport summary
//   record["gpu"]        GpuReport summary, or {"available": false, "reason": ...}
//   record["timeseries"] {"system": {...columns...}, "gpu": [{...columns...} per device]}
// Series are stored as columns (one array per quantity, aligned on t_seconds): compact in
// a JSON line and directly usable as chart data.
#pragma once
#include <nlohmann/json.hpp>

#include "metrics/gpu_monitor.h"
#include "metrics/system_monitor.h"

namespace tb {

nlohmann::json system_summary_json(const SystemReport& r);
nlohmann::json gpu_summary_json(const GpuReport& r);
nlohmann::json system_timeseries_json(const SystemReport& r);
nlohmann::json gpu_timeseries_json(const GpuReport& r);  // an array, one entry per device

// Sets record["system"], record["gpu"] and record["timeseries"].
void add_monitoring(nlohmann::json& record, const SystemReport& system, const GpuReport& gpu);

}  // namespace tb
