// Checkpoint files: built in memory, then written with write_file_atomic; read back with
// every length checked against the bytes that remain, so a torn or corrupt file gives an
// InputError and never a crash or a silently half-loaded model.
#include "train/checkpoint.h"

#include <bit>
#include <cstring>
#include <set>

#include "core/atomic_file.h"
#include "core/crc32.h"
#include "core/error.h"

namespace tb {

// Integers are copied to and from the file as they lie in memory, which is the file's
// little-endian order only on a little-endian host (the x86 machines we run on).
static_assert(std::endian::native == std::endian::little,
              "checkpoint.cpp writes integers in host byte order; port it to this host first");

namespace {

constexpr char kMagic[8] = {'T', 'B', 'C', 'K', 'P', 'T', '\0', '\0'};
constexpr uint8_t kMaxDType = static_cast<uint8_t>(DType::u8);

template <class T>
void put(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

// numel * dtype_size, or false if it overflows (only a corrupt file asks for that much).
bool byte_count(const Shape& shape, DType dtype, uint64_t& out) {
  uint64_t n = dtype_size(dtype);
  for (int i = 0; i < shape.rank; ++i)
    if (shape[i] < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(shape[i]), &n))
      return false;
  out = n;
  return true;
}

[[noreturn]] void truncated(const std::string& path) {
  throw InputError(fmt::format("checkpoint {} is truncated", path));
}

// Reads fixed-width fields in order; any field that would run past the end means the file
// was cut short.
class Reader {
 public:
  Reader(const std::string& path, std::string_view bytes) : path_(path), bytes_(bytes) {}

  template <class T>
  T get() {
    T value;
    std::memcpy(&value, take(sizeof(T)).data(), sizeof(T));
    return value;
  }

  std::string_view take(uint64_t n) {
    if (n > bytes_.size() - pos_) truncated(path_);
    std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  bool done() const { return pos_ == bytes_.size(); }

 private:
  const std::string& path_;
  std::string_view bytes_;
  size_t pos_ = 0;
};

[[noreturn]] void corrupt(const std::string& path, const std::string& why) {
  throw InputError(fmt::format("checkpoint {} is corrupt ({})", path, why));
}

HostTensor read_tensor(const std::string& path, Reader& in) {
  HostTensor t;
  t.name = std::string(in.take(in.get<uint32_t>()));
  const uint8_t dtype = in.get<uint8_t>();
  if (dtype > kMaxDType)
    corrupt(path, fmt::format("tensor '{}' has dtype code {}", t.name, dtype));
  t.dtype = static_cast<DType>(dtype);
  const uint8_t rank = in.get<uint8_t>();
  if (rank > Shape::kMaxRank)
    corrupt(path,
            fmt::format("tensor '{}' has rank {}, at most {}", t.name, rank, Shape::kMaxRank));
  t.shape.rank = rank;
  for (int i = 0; i < rank; ++i) t.shape[i] = in.get<int64_t>();
  const uint64_t bytes = in.get<uint64_t>();
  uint64_t expected = 0;
  if (!byte_count(t.shape, t.dtype, expected) || bytes != expected)
    corrupt(path, fmt::format("tensor '{}' of {} {} holds {} bytes", t.name, dtype_name(t.dtype),
                              t.shape.to_string(), bytes));
  const std::string_view data = in.take(bytes);
  t.bytes.assign(data.begin(), data.end());
  return t;
}

}  // namespace

const HostTensor* CheckpointData::find(const std::string& name) const {
  for (const HostTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string serialize_checkpoint(const CheckpointData& data) {
  // A path in the header may hold bytes that are not UTF-8; replacing them beats losing a
  // checkpoint to an exception at the end of an epoch.
  const std::string header =
      data.header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  size_t total = sizeof kMagic + 4 + 8 + header.size() + 4;
  for (const HostTensor& t : data.tensors) {
    uint64_t expected = 0;
    TB_CHECK(t.shape.rank >= 0 && t.shape.rank <= Shape::kMaxRank, "tensor '{}' rank {}", t.name,
             t.shape.rank);
    TB_CHECK(byte_count(t.shape, t.dtype, expected) && expected == t.bytes.size(),
             "tensor '{}' of {} {} holds {} bytes", t.name, dtype_name(t.dtype),
             t.shape.to_string(), t.bytes.size());
    TB_CHECK(t.name.size() <= UINT32_MAX, "tensor name of {} bytes", t.name.size());
    total += 4 + t.name.size() + 2 + 8 * t.shape.rank + 8 + t.bytes.size();
  }

  std::string out;
  out.reserve(total);
  out.append(kMagic, sizeof kMagic);
  put<uint32_t>(out, kCheckpointVersion);
  put<uint64_t>(out, header.size());
  out += header;
  for (const HostTensor& t : data.tensors) {
    put<uint32_t>(out, static_cast<uint32_t>(t.name.size()));
    out += t.name;
    put<uint8_t>(out, static_cast<uint8_t>(t.dtype));
    put<uint8_t>(out, static_cast<uint8_t>(t.shape.rank));
    for (int i = 0; i < t.shape.rank; ++i) put<int64_t>(out, t.shape[i]);
    put<uint64_t>(out, t.bytes.size());
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  }
  put<uint32_t>(out, crc32_update(0, out.data(), out.size()));
  return out;
}

void save_checkpoint(const std::string& path, const CheckpointData& data) {
  write_file_atomic(path, serialize_checkpoint(data));
}

CheckpointData load_checkpoint(const std::string& path) {
  return parse_checkpoint(path, read_file(path));
}

CheckpointData parse_checkpoint(const std::string& path, std::string_view bytes) {
  const size_t magic_seen = std::min(bytes.size(), sizeof kMagic);
  if (bytes.substr(0, magic_seen) != std::string_view(kMagic, magic_seen))
    throw InputError(fmt::format("{} is not a trainbench checkpoint (bad magic)", path));
  if (bytes.size() < sizeof kMagic + 4) truncated(path);

  // The version comes before anything else is trusted: a newer format may differ anywhere.
  uint32_t version = 0;
  std::memcpy(&version, bytes.data() + sizeof kMagic, 4);
  if (version > kCheckpointVersion)
    throw InputError(fmt::format(
        "checkpoint {} was written by a newer trainbench (format v{}; this build reads v{})", path,
        version, kCheckpointVersion));
  if (version == 0) corrupt(path, "format version 0");
  constexpr size_t kFixed = sizeof kMagic + 4 + 8 + 4;  // magic, version, json_bytes, crc
  if (bytes.size() < kFixed) truncated(path);

  // Walk the structure first, so that a file cut short says "truncated"; a file of the right
  // shape with wrong bytes is caught by the CRC after.
  const std::string_view body = bytes.substr(0, bytes.size() - 4);
  Reader in(path, body.substr(sizeof kMagic + 4));
  CheckpointData data;
  const std::string_view header = in.take(in.get<uint64_t>());
  std::set<std::string, std::less<>> names;
  while (!in.done()) {
    data.tensors.push_back(read_tensor(path, in));
    if (!names.insert(data.tensors.back().name).second)
      corrupt(path, fmt::format("two tensors named '{}'", data.tensors.back().name));
  }

  uint32_t stored_crc = 0;
  std::memcpy(&stored_crc, bytes.data() + body.size(), 4);
  if (crc32_update(0, body.data(), body.size()) != stored_crc)
    throw InputError(fmt::format("checkpoint {} is corrupt (CRC mismatch)", path));

  try {
    data.header = nlohmann::json::parse(header);
  } catch (const nlohmann::json::parse_error& e) {
    corrupt(path, fmt::format("header is not valid JSON: {}", e.what()));
  }
  return data;
}

}  // namespace tb
