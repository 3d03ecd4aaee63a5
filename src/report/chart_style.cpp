#include "report/chart_style.h"

#include <algorithm>

namespace tb {

nlohmann::json base_spec(const std::string& title) {
  // Same font stack and greys as report-assets/page.css.
  const char* font =
      "Inter, ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', "
      "Arial, sans-serif";
  nlohmann::json config = {{"font", font},
                           {"background", "#ffffff"},
                           {"padding", 8},
                           {"view", {{"stroke", nullptr}}},
                           {"axis",
                            {{"labelColor", "#4a5568"},
                             {"titleColor", "#2d3748"},
                             {"gridColor", "#edf2f7"},
                             {"domainColor", "#cbd5e0"},
                             {"tickColor", "#cbd5e0"},
                             {"labelFontSize", 11},
                             {"titleFontSize", 11},
                             {"titleFontWeight", 600},
                             {"titlePadding", 8}}},
                           {"legend",
                            {{"labelColor", "#2d3748"},
                             {"titleColor", "#2d3748"},
                             {"labelFontSize", 11},
                             {"titleFontSize", 11},
                             {"labelLimit", 320},
                             {"symbolSize", 90}}},
                           {"title",
                            {{"fontSize", 14},
                             {"fontWeight", 600},
                             {"color", "#1a202c"},
                             {"anchor", "start"},
                             {"subtitleColor", "#718096"},
                             {"subtitleFontSize", 11},
                             {"offset", 12}}},
                           {"header", {{"labelColor", "#2d3748"}}}};
  return {{"$schema", "https://vega.github.io/schema/vega-lite/v6.json"},
          {"title", {{"text", title}}},
          {"config", config}};
}

nlohmann::json impl_color_scale(const std::vector<std::string>& present) {
  static const std::pair<const char*, const char*> kColours[] = {
      {"ref", "#a0aec0"},  {"cpu", "#4c78a8"},   {"onednn", "#72b7b2"},
      {"cuda", "#54a24b"}, {"cudnn", "#2f7d32"}, {"pytorch", "#f58518"}};
  nlohmann::json domain = nlohmann::json::array(), range = nlohmann::json::array();
  for (const auto& [impl, colour] : kColours)
    if (std::find(present.begin(), present.end(), impl) != present.end()) {
      domain.push_back(impl);
      range.push_back(colour);
    }
  for (const std::string& impl : present)
    if (std::find(domain.begin(), domain.end(), impl) == domain.end()) {
      domain.push_back(impl);
      range.push_back("#b279a2");
    }
  return {{"domain", domain}, {"range", range}};
}

nlohmann::json workload_header() {
  return {{"labelAngle", 0},      {"labelAlign", "left"}, {"labelAnchor", "start"},
          {"labelOrient", "top"}, {"labelFontSize", 12},  {"labelFontWeight", 600},
          {"labelPadding", 6}};
}

}  // namespace tb
