// Writing files so that a crash or Ctrl-C never leaves a partial one behind.
#pragma once
#include <string>
#include <string_view>

namespace tb {

// Writes contents to path via a temp file in the same folder, fsync, then rename.
// Throws InputError naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view contents);

// Appends one line (a '\n' is added) to path atomically: the old contents plus the line are
// written to a temp file that replaces path, so readers never see half a line.
void append_line_atomic(const std::string& path, std::string_view line);

// Reads a whole file; throws InputError naming the path.
std::string read_file(const std::string& path);

}  // namespace tb
