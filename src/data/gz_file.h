// Reading a file that may or may not be gzip-compressed. zlib's gzread passes uncompressed
// files through unchanged, so every reader (IDX, tar.gz, checksums of payloads) accepts both
// forms without looking at the name.
#pragma once
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace tb {

class GzFile {
 public:
  // Opens path for reading; throws InputError naming the path if it is missing, is not a
  // regular file (a directory or FIFO would fail late or block), or cannot be opened.
  explicit GzFile(const std::string& path);
  ~GzFile();
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to n bytes; returns fewer only at the end of the payload. A corrupt or
  // truncated gzip stream throws InputError naming the path and what zlib found.
  size_t read(void* out, size_t n);

  // Bytes of payload read so far.
  uint64_t position() const { return position_; }
  const std::string& path() const { return path_; }
  // True when the file is not gzip and is read as-is.
  bool is_raw() const;

 private:
  std::string path_;
  gzFile file_ = nullptr;
  uint64_t position_ = 0;
};

}  // namespace tb
