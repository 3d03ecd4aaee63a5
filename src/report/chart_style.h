// The look shared by every chart of the report: fonts and colours that match the page, and
// one colour per implementation so a reader can follow `cudnn` from chart to chart.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tb {

// A Vega-Lite spec with the schema, the title and the report's config; data and marks are
// added by the caller.
nlohmann::json base_spec(const std::string& title);
// The colour scale for the `impl` field, limited to the implementations present (each keeps
// its colour whatever else is present).
nlohmann::json impl_color_scale(const std::vector<std::string>& present);
// Row headers of charts faceted by workload.
nlohmann::json workload_header();

}  // namespace tb
