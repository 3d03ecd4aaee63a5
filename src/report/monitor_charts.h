// Charts of the monitors' time series (record field "timeseries"): process memory and CPU
// utilisation, and GPU utilisation, memory, power and SM clock, one line per run.
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "report/run_records.h"

namespace tb {

// Vega-Lite specs, only for quantities some run has samples of.
std::vector<nlohmann::json> monitoring_charts(const std::vector<RunRecord>& runs);

}  // namespace tb
