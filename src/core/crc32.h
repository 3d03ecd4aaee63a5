// CRC-32 (the zlib / PNG / gzip polynomial) over a byte range, for file integrity checks.
#pragma once
#include <zlib.h>

#include <cstddef>
#include <cstdint>

namespace tb {

// Continues `crc` over [data, data + n); start with 0. crc32_z takes a size_t length, so
// multi-gigabyte checkpoints need no chunking.
inline uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(data), n));
}

}  // namespace tb
