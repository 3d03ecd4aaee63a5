// Running a helper program (curl, npm) without a shell: argv goes straight to execvp, so a
// URL or path can never be interpreted as shell syntax.
#pragma once
#include <string>
#include <vector>

namespace tb {

struct ProcessResult {
  bool started = false;  // false: the program could not be run at all (e.g. not installed)
  int exit_code = -1;    // exit status, or 128 + signal number if it was killed
  bool timed_out = false;
  std::string output;  // stdout and stderr together, the last 4 KiB
};

// Runs argv[0] (looked up in PATH) in folder cwd ("" = current), stdin from /dev/null, and
// waits at most timeout_s seconds before killing it (and its process group).
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd,
                          int timeout_s);

// True if `program` names an executable file, directly or through PATH.
bool program_available(const std::string& program);

}  // namespace tb
