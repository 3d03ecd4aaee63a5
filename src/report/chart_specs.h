// The report's charts as Vega-Lite specifications with their data inlined: built here, in
// C++, so that what a report draws is decided (and tested) in one place, and the page's
// script only hands each spec to vega-embed.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/run_records.h"

namespace tb {

struct ChartSpec {
  std::string section;  // speed, curves, confusion, monitoring
  std::string id;       // unique element id, "chart-3"
  nlohmann::json spec;  // Vega-Lite
};

// Every chart the runs have data for, in page order. A section with no data has no chart.
std::vector<ChartSpec> build_charts(const std::vector<RunRecord>& runs);

}  // namespace tb
