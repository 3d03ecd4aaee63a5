// Checkpoint files: round trip, and every way a file can be wrong (cut short anywhere, a
// flipped byte anywhere, wrong magic, newer version, missing) gives an InputError naming the
// path, never a crash. Saving replaces the file atomically and leaves no temp file behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/crc32.h"
#include "core/error.h"
#include "train/checkpoint.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tb_ckpt_XXXXXX").string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }
};

template <class T>
HostTensor tensor(const std::string& name, Shape shape, std::vector<T> values) {
  HostTensor t;
  t.name = name;
  t.dtype = dtype_of<T>();
  t.shape = shape;
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

CheckpointData sample() {
  CheckpointData d;
  d.header = {{"kind", "training"},
              {"epoch", 3},
              {"rng", {1ull, 2ull, 18446744073709551615ull, 4ull}},
              {"config", {{"model", "simple_cnn"}, {"lr", 0.05}}}};
  d.tensors.push_back(tensor<float>("conv.weight", Shape{2, 1, 2, 2},
                                    {1, -2, 3.5f, 4, 5, 6, 7, -8.25f}));
  d.tensors.push_back(tensor<double>("bn.running_var", Shape{3}, {0.1, 0.2, 1e300}));
  d.tensors.push_back(tensor<int32_t>("labels", Shape{2, 2}, {-1, 0, 7, 2147483647}));
  d.tensors.push_back(tensor<uint8_t>("mask", Shape{1, 1, 1, 1, 5}, {0, 1, 255, 3, 4}));
  d.tensors.push_back(tensor<float>("scalar", Shape{}, {42.0f}));
  d.tensors.push_back(tensor<float>("empty", Shape{0, 4}, {}));
  HostTensor half;  // fp16 / bf16 travel as raw bytes
  half.name = "fc.weight.bf16";
  half.dtype = DType::bf16;
  half.shape = Shape{3};
  half.bytes = {0x80, 0x3f, 0x00, 0x40, 0x40, 0xc0};
  d.tensors.push_back(half);
  return d;
}

void expect_equal(const CheckpointData& a, const CheckpointData& b) {
  EXPECT_EQ(a.header, b.header);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_TRUE(a.tensors[i].shape == b.tensors[i].shape) << a.tensors[i].name;
    EXPECT_EQ(a.tensors[i].bytes, b.tensors[i].bytes) << a.tensors[i].name;
  }
}

// The message of the InputError that loading path gives, or "" if it loads.
std::string load_error(const std::string& path) {
  try {
    load_checkpoint(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// The same for bytes in memory, named as if read from kPath: the loops below try hundreds of
// damaged files, and writing each to disk would only measure the filesystem.
const std::string kPath = "runs/run.ckpt";
std::string parse_error(std::string_view bytes) {
  try {
    parse_checkpoint(kPath, bytes);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

void write_plain(const std::string& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

void put_crc(std::string& file) {
  const uint32_t crc = crc32_update(0, file.data(), file.size() - 4);
  std::memcpy(file.data() + file.size() - 4, &crc, 4);
}

TEST(Checkpoint, RoundTrip) {
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  save_checkpoint(path, sample());
  const CheckpointData back = load_checkpoint(path);
  expect_equal(sample(), back);
  ASSERT_NE(back.find("labels"), nullptr);
  EXPECT_EQ(back.find("labels")->shape.to_string(), "[2x2]");
  EXPECT_EQ(back.find("nope"), nullptr);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"run.ckpt"});
}

TEST(Checkpoint, LayoutIsAsDocumented) {
  TempDir dir;
  CheckpointData d;
  d.header = {{"a", 1}};
  d.tensors.push_back(tensor<float>("w", Shape{2}, {1.0f, 2.0f}));
  save_checkpoint(dir.file("c"), d);
  const std::string f = read_file(dir.file("c"));
  EXPECT_EQ(f, serialize_checkpoint(d));
  std::string want("TBCKPT\0\0", 8);
  want += std::string("\x01\0\0\0", 4) + std::string("\x07\0\0\0\0\0\0\0", 8) + R"({"a":1})";
  want += std::string("\x01\0\0\0", 4) + "w" + std::string("\0\x01", 2);  // f32, rank 1
  want += std::string("\x02\0\0\0\0\0\0\0", 8) + std::string("\x08\0\0\0\0\0\0\0", 8);
  want += std::string("\0\0\x80\x3f\0\0\0\x40", 8);  // 1.0f, 2.0f
  ASSERT_EQ(f.size(), want.size() + 4);
  EXPECT_EQ(f.substr(0, want.size()), want);
  uint32_t crc;
  std::memcpy(&crc, f.data() + want.size(), 4);
  EXPECT_EQ(crc, crc32_update(0, want.data(), want.size()));
}

TEST(Checkpoint, EmptyCheckpointRoundTrips) {
  TempDir dir;
  save_checkpoint(dir.file("e"), CheckpointData{});
  expect_equal(CheckpointData{}, load_checkpoint(dir.file("e")));
}

TEST(Checkpoint, SaveReplacesExistingFile) {
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  save_checkpoint(path, sample());
  CheckpointData small;
  small.header = {{"epoch", 4}};
  save_checkpoint(path, small);
  expect_equal(small, load_checkpoint(path));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"run.ckpt"});
}

TEST(Checkpoint, EveryTruncationIsRefused) {
  const std::string full = serialize_checkpoint(sample());
  int said_truncated = 0;
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::string msg = parse_error(std::string_view(full).substr(0, cut));
    ASSERT_NE(msg, "") << "a file cut to " << cut << " bytes loaded";
    ASSERT_EQ(msg.rfind("checkpoint " + kPath + " is ", 0), 0u) << msg;
    said_truncated += msg == "checkpoint " + kPath + " is truncated";
  }
  // A cut whose last 4 bytes stand where a CRC would can only be caught by the CRC; every
  // other cut is recognised as a short file.
  EXPECT_GE(said_truncated, int(full.size()) - 8);
}

TEST(Checkpoint, TruncatedFileOnDisk) {
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  save_checkpoint(path, sample());
  fs::resize_file(path, fs::file_size(path) - 10);
  EXPECT_EQ(load_error(path), "checkpoint " + path + " is truncated");
}

TEST(Checkpoint, EveryFlippedByteIsRefused) {
  const std::string full = serialize_checkpoint(sample());
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t mask : {0x01, 0x5A, 0xFF}) {
      std::string bad = full;
      bad[i] = char(bad[i] ^ mask);
      const std::string msg = parse_error(bad);
      ASSERT_NE(msg, "") << "a flip at byte " << i << " loaded";
      ASSERT_NE(msg.find(kPath), std::string::npos) << msg;
    }
  }
}

TEST(Checkpoint, FlippedDataByteIsACrcMismatch) {
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  save_checkpoint(path, sample());
  std::string f = read_file(path);
  f[f.size() - 6] ^= 0x01;  // inside the last tensor's data
  write_plain(path, f);
  EXPECT_EQ(load_error(path), "checkpoint " + path + " is corrupt (CRC mismatch)");
  f[f.size() - 6] ^= 0x01;
  f[30] ^= 0x01;  // inside the JSON header
  EXPECT_EQ(parse_error(f), "checkpoint " + kPath + " is corrupt (CRC mismatch)");
  f[30] ^= 0x01;
  f[f.size() - 1] ^= 0x01;  // the CRC itself
  EXPECT_EQ(parse_error(f), "checkpoint " + kPath + " is corrupt (CRC mismatch)");
}

TEST(Checkpoint, WrongMagic) {
  TempDir dir;
  const std::string path = dir.file("model.pt");
  write_plain(path, "PK\x03\x04 this is a zip file, not a checkpoint");
  EXPECT_EQ(load_error(path), path + " is not a trainbench checkpoint (bad magic)");
  EXPECT_EQ(parse_error("TBC"), "checkpoint " + kPath + " is truncated");  // a cut file
  EXPECT_EQ(parse_error(""), "checkpoint " + kPath + " is truncated");
}

TEST(Checkpoint, NewerVersionIsNamed) {
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  std::string f = serialize_checkpoint(sample());
  f[8] = 2;
  put_crc(f);  // an intact file from a newer build, not a corrupt one
  write_plain(path, f);
  EXPECT_EQ(load_error(path), "checkpoint " + path +
                                  " was written by a newer trainbench (format v2; this build "
                                  "reads v1)");
}

TEST(Checkpoint, MalformedButIntactFilesAreRefused) {
  // Files whose CRC is right but whose contents are not: what a buggy writer would make.
  CheckpointData d;
  d.tensors.push_back(tensor<float>("w", Shape{2}, {1.0f, 2.0f}));
  const std::string good = serialize_checkpoint(d);
  const std::string corrupt = "checkpoint " + kPath + " is corrupt ";
  auto with = [&](size_t at, uint8_t value) {
    std::string f = good;
    f[at] = char(value);
    put_crc(f);
    return parse_error(f);
  };
  const size_t tensor_at = 8 + 4 + 8 + 4;  // after the header "null"
  const size_t dtype_at = tensor_at + 4 + 1, rank_at = dtype_at + 1;
  EXPECT_EQ(with(dtype_at, 9), corrupt + "(tensor 'w' has dtype code 9)");
  EXPECT_EQ(with(rank_at, 6), corrupt + "(tensor 'w' has rank 6, at most 5)");
  EXPECT_EQ(with(rank_at + 1, 3),  // dim 3 instead of 2: 12 bytes expected, 8 stored
            corrupt + "(tensor 'w' of fp32 [3] holds 8 bytes)");
  EXPECT_EQ(with(rank_at + 8, 0xFF),  // dim 0xFF00000000000002: negative
            corrupt + "(tensor 'w' of fp32 [-72057594037927934] holds 8 bytes)");
  EXPECT_EQ(with(rank_at + 8, 0x7F),  // dim 0x7F00000000000002: bytes overflow
            corrupt + "(tensor 'w' of fp32 [9151314442816847874] holds 8 bytes)");
  EXPECT_EQ(with(8, 0), corrupt + "(format version 0)");
  EXPECT_NE(with(8 + 4 + 8, '{').find(corrupt + "(header is not valid JSON"), std::string::npos);

  d.tensors.push_back(d.tensors[0]);
  EXPECT_EQ(parse_error(serialize_checkpoint(d)), corrupt + "(two tensors named 'w')");
}

TEST(Checkpoint, HugeLengthsAreTruncationNotACrash) {
  std::string f = serialize_checkpoint(sample());
  const uint64_t huge = ~uint64_t(0);
  std::memcpy(f.data() + 12, &huge, 8);  // json_bytes
  put_crc(f);
  EXPECT_EQ(parse_error(f), "checkpoint " + kPath + " is truncated");
  f = serialize_checkpoint(sample());
  const uint32_t name_len = ~uint32_t(0);
  std::memcpy(f.data() + 20 + sample().header.dump().size(), &name_len, 4);
  put_crc(f);
  EXPECT_EQ(parse_error(f), "checkpoint " + kPath + " is truncated");
}

TEST(Checkpoint, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("absent.ckpt");
  EXPECT_EQ(load_error(path), "cannot read " + path + ": No such file or directory");
}

TEST(Checkpoint, SaveIntoMissingFolderLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("no-such-dir/run.ckpt");
  try {
    save_checkpoint(path, sample());
    FAIL() << "saved into a missing folder";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "cannot write " + path + ": No such file or directory");
  }
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Checkpoint, FailedSaveKeepsThePreviousCheckpoint) {
  // The target is replaced only by rename, so a save that fails leaves the old file whole.
  TempDir dir;
  const std::string path = dir.file("run.ckpt");
  save_checkpoint(path, sample());
  fs::create_directory(path + ".tmp." + std::to_string(::getpid()));  // the temp cannot open
  CheckpointData other;
  other.header = {{"epoch", 99}};
  EXPECT_THROW(save_checkpoint(path, other), InputError);
  expect_equal(sample(), load_checkpoint(path));
}

TEST(Checkpoint, InconsistentTensorIsABug) {
  TempDir dir;
  CheckpointData d;
  d.tensors.push_back(tensor<float>("w", Shape{3}, {1.0f, 2.0f}));
  EXPECT_THROW(save_checkpoint(dir.file("x"), d), InternalError);
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace tb
