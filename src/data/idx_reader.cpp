#include "data/idx_reader.h"

#include <algorithm>

#include "core/error.h"
#include "data/gz_file.h"

namespace tb {
namespace {

constexpr uint8_t kUnsignedByte = 0x08;
// Generous bounds that still reject a garbage header before it drives a huge allocation.
constexpr uint32_t kMaxItems = 100'000'000;
constexpr uint32_t kMaxSide = 4096;

struct IdxHeader {
  uint8_t type = 0, ndims = 0;
  uint32_t dims[3] = {0, 0, 0};
};

uint32_t big_endian_u32(const uint8_t* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

// Reads the magic and sizes, checking they describe `want_dims` unsigned-byte dimensions.
IdxHeader read_header(GzFile& in, int want_dims, const char* what) {
  uint8_t magic[4];
  const size_t got = in.read(magic, 4);
  if (got < 4)
    throw InputError(
        fmt::format("{}: truncated: expected a 4-byte IDX header, found {} bytes", in.path(), got));
  IdxHeader h;
  h.type = magic[2];
  h.ndims = magic[3];
  const uint32_t value = big_endian_u32(magic);
  if (magic[0] != 0 || magic[1] != 0)
    throw InputError(fmt::format("{}: not an IDX file (magic 0x{:08X}; expected 0x{:08X} for {})",
                                 in.path(), value, 0x800u + want_dims, what));
  if (h.type != kUnsignedByte)
    throw InputError(fmt::format(
        "{}: unsupported IDX element type 0x{:02X} (magic 0x{:08X}); only unsigned bytes (0x08)",
        in.path(), h.type, value));
  if (h.ndims != want_dims) {
    const char* looks_like = h.ndims == 1   ? " (this looks like a label file)"
                             : h.ndims == 3 ? " (this looks like an image file)"
                                            : "";
    throw InputError(fmt::format("{}: wrong magic 0x{:08X}: {} need 0x{:08X} ({} dimension{}){}",
                                 in.path(), value, what, 0x800u + want_dims, want_dims,
                                 want_dims == 1 ? "" : "s", looks_like));
  }
  uint8_t sizes[12];
  const size_t need = 4u * h.ndims;
  const size_t got_sizes = in.read(sizes, need);
  if (got_sizes < need)
    throw InputError(fmt::format("{}: truncated: expected {} bytes of IDX sizes, found {}",
                                 in.path(), need, got_sizes));
  for (int d = 0; d < h.ndims; ++d) h.dims[d] = big_endian_u32(sizes + 4 * d);
  if (h.dims[0] == 0 || h.dims[0] > kMaxItems)
    throw InputError(
        fmt::format("{}: implausible item count {} in the IDX header", in.path(), h.dims[0]));
  for (int d = 1; d < h.ndims; ++d)
    if (h.dims[d] == 0 || h.dims[d] > kMaxSide)
      throw InputError(fmt::format("{}: implausible image size {}x{} in the IDX header", in.path(),
                                   h.dims[1], h.dims[2]));
  return h;
}

// Reads exactly `expected` payload bytes and checks nothing follows. Grows the buffer as data
// arrives instead of trusting the header, so a lying header on a short file cannot trigger a
// giant allocation.
std::vector<uint8_t> read_payload(GzFile& in, uint64_t expected, const char* what) {
  std::vector<uint8_t> data;
  constexpr size_t kChunk = size_t(1) << 22;
  uint64_t have = 0;
  while (have < expected) {
    const size_t want = size_t(std::min<uint64_t>(kChunk, expected - have));
    data.resize(size_t(have) + want);
    const size_t got = in.read(data.data() + have, want);
    have += got;
    if (got < want) break;
  }
  if (have < expected)
    throw InputError(fmt::format("{}: truncated: expected {} bytes of {} data, found {}", in.path(),
                                 expected, what, have));
  uint8_t extra[4096];
  uint64_t trailing = 0;
  for (size_t got; (got = in.read(extra, sizeof extra)) > 0;) trailing += got;
  if (trailing > 0)
    throw InputError(
        fmt::format("{}: expected {} bytes of {} data as the header says, found {} more after them",
                    in.path(), expected, what, trailing));
  data.resize(size_t(expected));
  return data;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  GzFile in(path);
  const IdxHeader h = read_header(in, 3, "images");
  IdxImages out;
  out.count = h.dims[0];
  out.rows = int(h.dims[1]);
  out.cols = int(h.dims[2]);
  out.pixels = read_payload(in, uint64_t(out.count) * out.rows * out.cols, "image");
  return out;
}

std::vector<int32_t> read_idx_labels(const std::string& path, int classes) {
  GzFile in(path);
  const IdxHeader h = read_header(in, 1, "labels");
  const std::vector<uint8_t> raw = read_payload(in, h.dims[0], "label");
  std::vector<int32_t> labels(raw.begin(), raw.end());
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= classes)
      throw InputError(fmt::format("{}: label {} at item {} is out of range (classes 0..{})", path,
                                   labels[i], i, classes - 1));
  return labels;
}

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         int classes) {
  IdxImages images = read_idx_images(images_path);
  std::vector<int32_t> labels = read_idx_labels(labels_path, classes);
  if (int64_t(labels.size()) != images.count)
    throw InputError(fmt::format("{}: has {} labels but {} has {} images", labels_path,
                                 labels.size(), images_path, images.count));
  Dataset d;
  d.channels = 1;
  d.height = images.rows;
  d.width = images.cols;
  d.classes = classes;
  d.images = std::move(images.pixels);
  d.labels = std::move(labels);
  d.source = images_path + " + " + labels_path;
  return d;
}

}  // namespace tb
