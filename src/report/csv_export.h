// `trainbench export-csv`: one row per results record with its key metrics, for
// spreadsheets and pandas. Columns: identity and configuration first, then every number the
// records' "final" objects hold (the union over all records, so fields a newer runner adds
// appear without a change here), then monitor summaries and the environment.
#pragma once
#include <string>
#include <vector>

#include "report/run_records.h"

namespace tb {

// RFC 4180 CSV text with a header row.
std::string results_csv(const std::vector<RunRecord>& runs);

// A field quoted when it holds a comma, quote or line break.
std::string csv_field(const std::string& text);

}  // namespace tb
