#include "report/html_writer.h"

#include <fmt/format.h>

#include <cctype>

namespace tb {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string table_html(const ReportTable& t) {
  std::string out = "<div class=\"tb-table-wrap\"><table class=\"tb-table\">\n<thead><tr>";
  for (size_t c = 0; c < t.headers.size(); ++c)
    out += fmt::format("<th{}>{}</th>", t.numeric[c] ? " class=\"num\"" : "",
                       html_escape(t.headers[c]));
  out += "</tr></thead>\n<tbody>\n";
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const std::string tag = r < t.row_tags.size() ? t.row_tags[r] : "";
    out += tag.empty() ? "<tr>" : fmt::format("<tr class=\"{}\">", html_escape(tag));
    for (size_t c = 0; c < t.rows[r].size(); ++c) {
      // Cells stay on one line (the table scrolls sideways), except free text.
      const char* css = t.numeric[c]              ? " class=\"num\""
                        : t.headers[c] == "Error" ? " class=\"text\""
                                                  : "";
      out += fmt::format("<td{}>{}</td>", css, html_escape(t.rows[r][c]));
    }
    out += "</tr>\n";
  }
  out += "</tbody></table></div>\n";
  return out;
}

std::string definition_list_html(const std::vector<std::pair<std::string, std::string>>& items,
                                 const char* css_class) {
  std::string out = fmt::format("<dl class=\"{}\">\n", css_class);
  for (const auto& [key, value] : items)
    out += fmt::format("<div><dt>{}</dt><dd>{}</dd></div>\n", html_escape(key), html_escape(value));
  out += "</dl>\n";
  return out;
}

std::string script_safe_json(const nlohmann::json& j) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<')
      out += "\\u003c";
    else
      out += c;
  }
  return out;
}

std::string script_safe_text(std::string_view js) {
  std::string out(js);
  for (size_t at = 0; (at = out.find("</", at)) != std::string::npos; at += 2) {
    std::string_view rest(out.data() + at + 2, std::min<size_t>(6, out.size() - at - 2));
    std::string lower;
    for (char c : rest) lower += char(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "script") out.replace(at, 2, "<\\/");
  }
  return out;
}

}  // namespace tb
