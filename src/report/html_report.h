// The self-contained HTML report: tables rendered here, charts as Vega-Lite specs drawn in
// the browser by the chart libraries compiled into the binary (report-assets/), sample test
// images drawn from their pixels. One file, no network needed to view it.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "report/run_records.h"

namespace tb {

// The files cmake/report_assets.cmake compiled in (page.css, page.js, vega.min.js,
// vega-lite.min.js, vega-embed.min.js, chart-libraries.json, chart-licenses.txt), or an
// empty view. The chart libraries are absent when the build had no npm.
std::string_view report_asset(std::string_view name);
bool report_charts_available();

struct HtmlReport {
  std::string html;
  int charts = 0;        // Vega-Lite charts the page will draw
  int sample_grids = 0;  // runs whose test images it shows
  bool charts_embedded = false;
};

// sources: the results files, named in the header. with_charts = false leaves the chart
// libraries out (a page of about a tenth the size, tables and images only).
HtmlReport render_html_report(const std::vector<RunRecord>& runs,
                              const std::vector<std::string>& sources, bool with_charts = true);

}  // namespace tb
