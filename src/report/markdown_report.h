// The report as Markdown (`trainbench report --format md`): the runs and speedup tables and
// the environment, for pasting into an issue or a README.
#pragma once
#include <string>
#include <vector>

#include "report/report_tables.h"
#include "report/run_records.h"

namespace tb {

// A GitHub-flavoured Markdown table ('|' in cells escaped).
std::string markdown_table(const ReportTable& table);

std::string render_markdown_report(const std::vector<RunRecord>& runs,
                                   const std::vector<std::string>& sources);

}  // namespace tb
