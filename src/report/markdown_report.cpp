#include "report/markdown_report.h"

#include <fmt/format.h>

namespace tb {
namespace {

std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|')
      out += "\\|";
    else if (c == '\n')
      out += ' ';
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string markdown_table(const ReportTable& t) {
  std::string out = "|";
  for (const auto& h : t.headers) out += fmt::format(" {} |", cell(h));
  out += "\n|";
  for (bool numeric : t.numeric) out += numeric ? " ---: |" : " --- |";
  out += "\n";
  for (const auto& row : t.rows) {
    out += "|";
    for (const auto& c : row) out += fmt::format(" {} |", cell(c));
    out += "\n";
  }
  return out;
}

std::string render_markdown_report(const std::vector<RunRecord>& runs,
                                   const std::vector<std::string>& sources) {
  std::string out = "# trainbench report\n\n";
  std::string files;
  for (const auto& s : sources) files += fmt::format("{}`{}`", files.empty() ? "" : ", ", s);
  out += fmt::format("{} run{} from {}.\n\n", runs.size(), runs.size() == 1 ? "" : "s", files);
  out += "## Runs\n\n";
  const std::string shared = shared_settings(runs);
  if (!shared.empty()) out += fmt::format("Every run: {}.\n\n", shared);
  out += markdown_table(runs_table(runs)) + "\n";
  const ReportTable efficiency = efficiency_table(runs);
  if (efficiency.headers.size() > 3 && !efficiency.rows.empty())
    out += "## Resources and efficiency\n\n" + markdown_table(efficiency) + "\n";
  const ReportTable speedup = speedup_table(runs);
  if (!speedup.rows.empty())
    out +=
        "## Speedup against the baseline\n\nThroughput relative to each workload's baseline "
        "run; test accuracy change in percentage points.\n\n" +
        markdown_table(speedup) + "\n";
  const ReportTable problems = problems_table(runs);
  if (!problems.rows.empty())
    out += "## Failed, skipped and interrupted runs\n\n" + markdown_table(problems) + "\n";
  const std::vector<EnvironmentGroup> groups = environment_groups(runs);
  out += "## Environment\n\n";
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups.size() > 1) {
      std::string members;
      for (int i : groups[g].runs)
        members += fmt::format("{}#{}", members.empty() ? "" : ", ", i + 1);
      out += fmt::format("### Environment {} (runs {})\n\n", g + 1, members);
    }
    for (const auto& [key, value] : environment_highlights(groups[g], runs))
      out += fmt::format("- **{}**: {}\n", key, cell(value));
    out += "\n";
  }
  return out;
}

}  // namespace tb
