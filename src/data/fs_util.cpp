#include "data/fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace tb::fsutil {
namespace {

std::string os_error() { return std::strerror(errno); }

// Writes all of data to fd; false on error.
bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw InputError(fmt::format("{}: cannot create folder: {}", path, ec.message()));
}

std::string temp_path_for(const std::string& final_path) {
  static std::atomic<int> counter{0};
  const size_t slash = final_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : final_path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? final_path : final_path.substr(slash + 1);
  return fmt::format("{}.{}.part-{}-{}", dir, name, ::getpid(), counter++);
}

void remove_quietly(const std::string& path) { ::unlink(path.c_str()); }

void rename_into_place(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw InputError(fmt::format("{}: cannot rename to {}: {}", from, to, os_error()));
}

void write_file(const std::string& path, std::string_view contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw InputError(fmt::format("{}: cannot create: {}", path, os_error()));
  const bool ok = write_all(fd, contents.data(), contents.size()) && ::fsync(fd) == 0;
  const std::string why = os_error();
  ::close(fd);
  if (!ok) throw InputError(fmt::format("{}: write failed: {}", path, why));
}

void copy_file(const std::string& src, const std::string& dst) {
  const int in = ::open(src.c_str(), O_RDONLY);
  if (in < 0) throw InputError(fmt::format("{}: cannot open: {}", src, os_error()));
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) {
    const std::string why = os_error();
    ::close(in);
    throw InputError(fmt::format("{}: cannot create: {}", dst, why));
  }
  char buf[1 << 16];
  bool ok = true;
  for (;;) {
    const ssize_t got = ::read(in, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ok = false;
    if (got <= 0 || !(ok = write_all(out, buf, size_t(got)))) break;
  }
  ok = ok && ::fsync(out) == 0;
  const std::string why = os_error();
  ::close(in);
  ::close(out);
  if (!ok) throw InputError(fmt::format("copying {} to {} failed: {}", src, dst, why));
}

void remove_tree_quietly(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace tb::fsutil
