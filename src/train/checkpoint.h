// Checkpoint files: a versioned binary format written atomically (temp file, fsync, rename),
// with a CRC-32 over everything so a torn or corrupted file is refused, never half-read.
//
// Layout (little-endian):
//   magic "TBCKPT\0\0" | u32 version | u64 json_bytes | json header | tensors... | u32 crc32
//   each tensor: u32 name_len | name | u8 dtype | u8 rank | i64 dims[rank] | u64 bytes | data
// The JSON header holds the run's configuration and progress (epoch, step, RNG state, ...).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/shape.h"

namespace tb {

inline constexpr uint32_t kCheckpointVersion = 1;

struct HostTensor {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::vector<uint8_t> bytes;
};

struct CheckpointData {
  nlohmann::json header;
  std::vector<HostTensor> tensors;
  const HostTensor* find(const std::string& name) const;
};

// Throws InputError (naming the path) if the file cannot be written; no partial file remains.
void save_checkpoint(const std::string& path, const CheckpointData& data);
// Throws InputError naming the path for a missing, truncated, corrupt or newer-version file.
CheckpointData load_checkpoint(const std::string& path);

// The two halves of save and load, in memory: the bytes of a checkpoint file, and the data
// back from them (path only names the file in errors, which are those of load_checkpoint).
std::string serialize_checkpoint(const CheckpointData& data);
CheckpointData parse_checkpoint(const std::string& path, std::string_view bytes);

}  // namespace tb
