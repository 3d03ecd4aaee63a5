// Small pieces of HTML: escaping, tables, definition lists, and JSON made safe to sit inside
// a <script> element.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "report/report_tables.h"

namespace tb {

std::string html_escape(std::string_view text);

// <table class="tb-table"> with a header row; numeric columns right-aligned, rows tagged
// with their row_tags as classes.
std::string table_html(const ReportTable& table);

// <dl> of key/value pairs.
std::string definition_list_html(const std::vector<std::pair<std::string, std::string>>& items,
                                 const char* css_class);

// JSON text that cannot end a <script> element early: every '<' (which JSON only allows
// inside strings) becomes \u003c.
std::string script_safe_json(const nlohmann::json& j);

// Script text with any "</script" defused (it can only occur inside a string or comment).
std::string script_safe_text(std::string_view js);

}  // namespace tb
