// Atomic file replacement with POSIX calls: the data is fsync'ed before the rename so that a
// crash can leave the old file or the new one, never a renamed-but-empty one, and the folder
// is fsync'ed after so that the rename itself survives a power cut.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace tb {
namespace {

std::string reason(int err) { return std::error_code(err, std::generic_category()).message(); }

[[noreturn]] void throw_write_error(const std::string& path, int err) {
  throw InputError(fmt::format("cannot write {}: {}", path, reason(err)));
}

// write() may write less than asked, and a signal may interrupt it.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Makes the rename durable. Some filesystems cannot fsync a folder and say EINVAL; the data
// itself is already on disk then, so that is not worth failing a run for.
void sync_directory(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  const char* dir = parent.empty() ? "." : parent.c_str();
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_write_error(path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) throw_write_error(path, err);
}

// Reads path into out. Returns false if it does not exist and missing_ok; throws otherwise.
bool read_into(const std::string& path, std::string& out, bool missing_ok) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (missing_ok && errno == ENOENT) return false;
    throw InputError(fmt::format("cannot read {}: {}", path, reason(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw InputError(fmt::format("cannot read {}: {}", path, reason(err)));
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view contents) {
  // The temp file lives next to the target: rename() is only atomic within one filesystem.
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw_write_error(path, errno);

  auto fail = [&](int err) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw_write_error(path, err);
  };
  if (!write_all(fd, contents)) fail(errno);
  if (::fsync(fd) != 0) fail(errno);
  const int rc = ::close(fd);
  fd = -1;
  if (rc != 0) fail(errno);  // NFS reports some write errors only at close
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
  sync_directory(path);
}

void append_line_atomic(const std::string& path, std::string_view line) {
  TB_CHECK(line.find('\n') == std::string_view::npos, "a line to append to {} holds a newline",
           path);
  std::string contents;
  read_into(path, contents, /*missing_ok=*/true);
  // A file last edited by hand may lack its final newline; without one the new line would
  // be glued onto the old last line.
  if (!contents.empty() && contents.back() != '\n') contents += '\n';
  contents.append(line);
  contents += '\n';
  write_file_atomic(path, contents);
}

std::string read_file(const std::string& path) {
  std::string contents;
  read_into(path, contents, /*missing_ok=*/false);
  return contents;
}

}  // namespace tb
