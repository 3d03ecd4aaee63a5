// File-system helpers for the fetcher: staging files under temporary names and renaming them
// into place, so an interrupted or failed fetch never leaves a partial file under a real name.
#pragma once
#include <string>
#include <string_view>

namespace tb::fsutil {

// mkdir -p; throws InputError naming the path.
void make_dirs(const std::string& path);

// A name next to `final_path` (same folder, hence same file system, so rename is atomic) that
// no loader looks at: ".NAME.part-PID-N".
std::string temp_path_for(const std::string& final_path);

// Deletes a file if it exists; ignores errors (used for cleanup).
void remove_quietly(const std::string& path);

// Atomic rename; throws InputError naming both paths.
void rename_into_place(const std::string& from, const std::string& to);

// Writes contents to path (created or truncated) and fsyncs it, so a later rename publishes
// complete data even after a crash. Callers write to a temp_path_for() name, then rename.
void write_file(const std::string& path, std::string_view contents);

// Copies src to dst the same way.
void copy_file(const std::string& src, const std::string& dst);

// Deletes a temp file at scope exit unless release() was called.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!path_.empty()) remove_quietly(path_);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// Deletes a folder and everything in it, quietly (used only on our own staging folders).
void remove_tree_quietly(const std::string& path);

}  // namespace tb::fsutil
