// MD5 (RFC 1321), only for checking downloads against the published checksums. It is not a
// security measure: the published sums are MD5, so MD5 is what we can compare.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tb {

class Md5 {
 public:
  Md5();
  void update(const void* data, size_t n);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Lowercase hex digest; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t state_[4];
  uint64_t bytes_ = 0;
  uint8_t buffer_[64];
  size_t buffered_ = 0;
};

std::string md5_hex(std::string_view data);

// MD5 of the file's bytes as stored. Throws InputError naming the path.
std::string md5_of_file(const std::string& path);

// MD5 of the file's payload: decompressed if it is gzip, as stored otherwise. Throws
// InputError naming the path on read errors or corrupt gzip.
std::string md5_of_payload(const std::string& path);

}  // namespace tb
