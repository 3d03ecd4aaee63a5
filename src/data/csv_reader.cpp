#include "data/csv_reader.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string_view>

#include "core/error.h"
#include "data/class_names.h"

namespace tb {
namespace {

constexpr int kSide = 28;
constexpr int kPixels = kSide * kSide;

// The whole file in memory: a Kaggle train.csv is ~75 MB, and parsing a buffer is several
// times faster than getline + stringstream.
std::string slurp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw InputError(fmt::format("{}: not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::string text(size_t(st.st_size), '\0');
  in.read(text.data(), std::streamsize(text.size()));
  if (size_t(in.gcount()) != text.size()) throw InputError(fmt::format("{}: read error", path));
  return text;
}

// Splits one line (without its newline) at commas.
void split_fields(std::string_view line, std::vector<std::string_view>& fields) {
  fields.clear();
  size_t start = 0;
  for (size_t i = 0; i <= line.size(); ++i)
    if (i == line.size() || line[i] == ',') {
      fields.push_back(line.substr(start, i - start));
      start = i + 1;
    }
}

// An integer in [0, max]; anything else (sign, blank, decimal point, overflow) is refused.
bool parse_small_uint(std::string_view s, int max, int& value) {
  if (s.empty() || s.size() > 3) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  value = v;
  return true;
}

// Checks the header and says whether the file has a label column.
bool parse_header(const std::string& path, const std::vector<std::string_view>& cols) {
  const bool labelled = !cols.empty() && cols[0] == "label";
  const size_t want = kPixels + (labelled ? 1 : 0);
  if (cols.size() != want)
    throw InputError(
        fmt::format("{}:1: header has {} columns; expected `label,pixel0,...,pixel783` (785) or "
                    "`pixel0,...,pixel783` (784)",
                    path, cols.size()));
  for (int p = 0; p < kPixels; ++p) {
    const std::string_view got = cols[size_t(p) + (labelled ? 1 : 0)];
    if (got != "pixel" + std::to_string(p))
      throw InputError(fmt::format("{}:1: header column {} is '{}', expected 'pixel{}'", path,
                                   p + (labelled ? 2 : 1), got, p));
  }
  return labelled;
}

}  // namespace

Dataset read_digit_csv(const std::string& path) {
  const std::string text = slurp(path);
  Dataset d;
  d.name = "digit-csv";
  d.source = path;
  d.channels = 1;
  d.height = d.width = kSide;
  d.classes = 10;
  d.class_names = digit_class_names();

  // One row per newline, less the header: reserving avoids ~25 reallocations of a 33 MB buffer.
  const size_t lines = size_t(std::count(text.begin(), text.end(), '\n'));
  d.images.reserve(lines * kPixels);
  std::vector<std::string_view> fields;
  bool have_header = false, labelled = false;
  size_t pos = 0;
  for (int64_t line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // Windows line endings
    if (line.empty()) continue;  // blank lines (typically the last one) carry no record
    split_fields(line, fields);
    if (!have_header) {
      labelled = parse_header(path, fields);
      have_header = true;
      continue;
    }
    const size_t want = kPixels + (labelled ? 1 : 0);
    if (fields.size() != want)
      throw InputError(fmt::format("{}:{}: {} columns, expected {} as in the header", path, line_no,
                                   fields.size(), want));
    size_t f = 0;
    int value = 0;
    if (labelled) {
      if (!parse_small_uint(fields[0], 9, value))
        throw InputError(
            fmt::format("{}:{}: label '{}' is not an integer 0..9", path, line_no, fields[0]));
      d.labels.push_back(value);
      f = 1;
    }
    for (int p = 0; p < kPixels; ++p, ++f) {
      if (!parse_small_uint(fields[f], 255, value))
        throw InputError(
            fmt::format("{}:{}: column {} (pixel{}) value '{}' is not an integer "
                        "0..255",
                        path, line_no, f + 1, p, fields[f]));
      d.images.push_back(uint8_t(value));
    }
  }
  if (!have_header) throw InputError(fmt::format("{}: empty file (no header)", path));
  if (d.images.empty()) throw InputError(fmt::format("{}: header but no rows", path));
  return d;
}

}  // namespace tb
