#include "data/gz_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "core/error.h"

namespace tb {

GzFile::GzFile(const std::string& path) : path_(path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw InputError(fmt::format("{}: not a regular file", path));
  file_ = gzopen(path.c_str(), "rb");
  if (!file_) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  gzbuffer(file_, 1 << 17);  // larger than the 8 KiB default: fewer syscalls on 50 MB files
}

GzFile::~GzFile() {
  if (file_) gzclose(file_);
}

bool GzFile::is_raw() const { return gzdirect(file_) != 0; }

size_t GzFile::read(void* out, size_t n) {
  auto* dst = static_cast<unsigned char*>(out);
  size_t done = 0;
  while (done < n) {
    // gzread takes an unsigned count and returns int: keep each request well under INT_MAX.
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    const int got = gzread(file_, dst + done, chunk);
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    // A truncated stream ends with got == 0 and Z_BUF_ERROR, not with got < 0, so the error
    // state has to be checked after every short read, not only on -1.
    if (got < 0 || (code != Z_OK && code != Z_STREAM_END)) {
      std::string why = message ? message : "unknown zlib error";
      // zlib prefixes its message with the path; drop it so the path is not said twice.
      if (why.rfind(path_ + ": ", 0) == 0) why.erase(0, path_.size() + 2);
      if (code == Z_ERRNO) throw InputError(fmt::format("{}: read error: {}", path_, why));
      throw InputError(fmt::format("{}: corrupt or truncated gzip data ({})", path_, why));
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  position_ += done;
  return done;
}

}  // namespace tb
