// Readers (IDX, CIFAR-10 binary, digit CSV) and load_dataset, on files generated here in the
// real formats, plus the real MNIST / Fashion-MNIST when they are available.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/cifar_reader.h"
#include "data/csv_reader.h"
#include "data/data_api.h"
#include "data/idx_reader.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    std::string p = (fs::temp_directory_path() / "tb-data-test-XXXXXX").string();
    path = mkdtemp(p.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

// Sets an environment variable for one test.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char* n, const std::string& value) : name(n) {
    const char* o = getenv(n);
    had = o != nullptr;
    if (had) old = o;
    setenv(n, value.c_str(), 1);
  }
  ~ScopedEnv() { had ? setenv(name.c_str(), old.c_str(), 1) : unsetenv(name.c_str()); }
};

void write_bytes(const std::string& path, const std::string& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols, int64_t payload = -1) {
  std::string s = be32(0x803) + be32(n) + be32(rows) + be32(cols);
  const int64_t bytes = payload >= 0 ? payload : int64_t(n) * rows * cols;
  for (int64_t i = 0; i < bytes; ++i) s += char((i * 7 + 3) % 256);
  return s;
}

std::string idx_labels(uint32_t n, int classes = 10) {
  std::string s = be32(0x801) + be32(n);
  for (uint32_t i = 0; i < n; ++i) s += char(i % classes);
  return s;
}

// An MNIST-style folder with n train and m test items of 28x28.
void write_idx_folder(const std::string& folder, uint32_t n, uint32_t m, bool gz) {
  fs::create_directories(folder);
  const std::string ext = gz ? ".gz" : "";
  write_bytes(folder + "/train-images-idx3-ubyte" + ext, idx_images(n, 28, 28), gz);
  write_bytes(folder + "/train-labels-idx1-ubyte" + ext, idx_labels(n), gz);
  write_bytes(folder + "/t10k-images-idx3-ubyte" + ext, idx_images(m, 28, 28), gz);
  write_bytes(folder + "/t10k-labels-idx1-ubyte" + ext, idx_labels(m), gz);
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}

// ---- IDX ----

TEST(DataIdx, ReadsGzipAndRawAlike) {
  TempDir t;
  for (bool gz : {true, false}) {
    const std::string img = t.path + (gz ? "/i.gz" : "/i"), lab = t.path + (gz ? "/l.gz" : "/l");
    write_bytes(img, idx_images(5, 4, 3), gz);
    write_bytes(lab, idx_labels(5), gz);
    const Dataset d = read_idx_dataset(img, lab, 10);
    EXPECT_EQ(d.size(), 5);
    EXPECT_EQ(d.height, 4);
    EXPECT_EQ(d.width, 3);
    EXPECT_EQ(d.channels, 1);
    ASSERT_EQ(d.images.size(), 60u);
    EXPECT_EQ(d.images[1], 10);  // (1 * 7 + 3) % 256
    EXPECT_EQ(d.labels[4], 4);
  }
}

TEST(DataIdx, TruncatedImagesSayHowMuch) {
  TempDir t;
  for (bool gz : {true, false}) {
    const std::string p = t.path + (gz ? "/trunc.gz" : "/trunc");
    write_bytes(p, idx_images(10, 28, 28, 7000), gz);
    const std::string e = error_of([&] { read_idx_images(p); });
    EXPECT_NE(e.find(p + ": truncated: expected 7840 bytes of image data, found 7000"),
              std::string::npos)
        << e;
  }
}

TEST(DataIdx, LyingHeaderOnTinyFileIsAnErrorNotACrash) {
  TempDir t;
  const std::string p = t.path + "/huge";
  write_bytes(p, idx_images(90'000'000, 28, 28, 100), false);  // claims 70 GB
  EXPECT_NE(error_of([&] { read_idx_images(p); }).find("truncated: expected"), std::string::npos);
  write_bytes(p, be32(0x803) + be32(4'000'000'000u) + be32(28) + be32(28), false);
  EXPECT_NE(error_of([&] { read_idx_images(p); }).find("implausible item count"),
            std::string::npos);
  write_bytes(p, be32(0x803) + be32(1), false);  // header cut short
  EXPECT_NE(error_of([&] { read_idx_images(p); }).find("truncated"), std::string::npos);
  write_bytes(p, "", false);
  EXPECT_NE(error_of([&] { read_idx_images(p); }).find(p), std::string::npos);
}

TEST(DataIdx, ExtraBytesAfterPayloadAreRejected) {
  TempDir t;
  const std::string p = t.path + "/extra.gz";
  write_bytes(p, idx_images(2, 2, 2, 8 + 3), true);
  const std::string e = error_of([&] { read_idx_images(p); });
  EXPECT_NE(e.find("found 3 more"), std::string::npos) << e;
}

TEST(DataIdx, WrongMagicNamesTheFile) {
  TempDir t;
  const std::string labels = t.path + "/labels.gz", junk = t.path + "/junk";
  write_bytes(labels, idx_labels(3), true);
  std::string e = error_of([&] { read_idx_images(labels); });
  EXPECT_NE(e.find(labels + ": wrong magic 0x00000801"), std::string::npos) << e;
  EXPECT_NE(e.find("label file"), std::string::npos) << e;
  write_bytes(junk, "PK\x03\x04 this is a zip file, not IDX", false);
  e = error_of([&] { read_idx_labels(junk, 10); });
  EXPECT_NE(e.find(junk + ": not an IDX file"), std::string::npos) << e;
  write_bytes(junk, be32(0x0D03) + be32(1) + be32(1) + be32(1) + "abcd", false);  // float type
  e = error_of([&] { read_idx_images(junk); });
  EXPECT_NE(e.find("unsupported IDX element type 0x0D"), std::string::npos) << e;
}

TEST(DataIdx, CorruptGzipNamesTheFile) {
  TempDir t;
  const std::string p = t.path + "/corrupt.gz";
  write_bytes(p, idx_images(50, 28, 28), true);
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  for (size_t i = 20; i < 40; ++i) bytes[i] = char(bytes[i] ^ 0x5A);
  write_bytes(p, bytes, false);
  std::string e = error_of([&] { read_idx_images(p); });
  EXPECT_NE(e.find(p + ": corrupt or truncated gzip data"), std::string::npos) << e;
  // A gzip stream cut in the middle.
  write_bytes(p, bytes.substr(0, 10), false);
  e = error_of([&] { read_idx_images(p); });
  EXPECT_NE(e.find(p), std::string::npos) << e;
}

TEST(DataIdx, CountMismatchAndLabelRange) {
  TempDir t;
  const std::string img = t.path + "/i", lab = t.path + "/l";
  write_bytes(img, idx_images(5, 2, 2), false);
  write_bytes(lab, idx_labels(4), false);
  std::string e = error_of([&] { read_idx_dataset(img, lab, 10); });
  EXPECT_NE(e.find(lab + ": has 4 labels but " + img + " has 5 images"), std::string::npos) << e;
  write_bytes(lab, be32(0x801) + be32(3) + std::string("\x01\x0c\x02"), false);
  e = error_of([&] { read_idx_labels(lab, 10); });
  EXPECT_NE(e.find(lab + ": label 12 at item 1 is out of range"), std::string::npos) << e;
}

TEST(DataIdx, MissingFileAndDirectory) {
  TempDir t;
  EXPECT_NE(error_of([&] { read_idx_images(t.path + "/nope"); }).find("/nope: cannot open"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_idx_images(t.path); }).find("not a regular file"),
            std::string::npos);
}

// ---- load_dataset ----

TEST(DataLoad, NamesAndDataDir) {
  EXPECT_EQ(canonical_dataset_name("CIFAR-10"), "cifar10");
  EXPECT_EQ(canonical_dataset_name("Fashion-MNIST"), "fashion-mnist");
  EXPECT_NE(error_of([] { canonical_dataset_name("imagenet"); }).find("unknown dataset 'imagenet'"),
            std::string::npos);
  EXPECT_EQ(dataset_names().size(), 4u);
  ScopedEnv env("TRAINBENCH_DATA", "/somewhere");
  EXPECT_EQ(resolve_data_dir(""), "/somewhere");
  EXPECT_EQ(resolve_data_dir("x"), "x");
  unsetenv("TRAINBENCH_DATA");
  EXPECT_EQ(resolve_data_dir(""), "./data");
}

TEST(DataLoad, MissingDatasetSaysHowToFetch) {
  TempDir t;
  const std::string e = error_of([&] { load_dataset("mnist", t.path); });
  EXPECT_NE(
      e.find("mnist not found under " + t.path + "/mnist (looked for train-images-idx3-ubyte[.gz]"),
      std::string::npos)
      << e;
  EXPECT_NE(
      e.find("run `trainbench data fetch mnist --data-dir " + t.path + "` or pass --data-dir"),
      std::string::npos)
      << e;
  EXPECT_NE(
      error_of([&] { load_dataset("cifar10", t.path); }).find("trainbench data fetch cifar10"),
      std::string::npos);
}

TEST(DataLoad, RawAndGzipNamesAndSource) {
  TempDir t;
  write_idx_folder(t.path + "/mnist", 20, 5, false);
  write_idx_folder(t.path + "/fashion-mnist", 20, 5, true);
  const DatasetFiles m = load_dataset("mnist", t.path);
  EXPECT_EQ(m.train.size(), 20);
  EXPECT_EQ(m.test.size(), 5);
  EXPECT_TRUE(m.has_test);
  EXPECT_EQ(m.train.class_names[3], "3");
  EXPECT_NE(m.train.source.find("mnist/train-images-idx3-ubyte"), std::string::npos);
  const DatasetFiles f = load_dataset("fashion-mnist", t.path);
  EXPECT_EQ(f.train.name, "fashion-mnist");
  EXPECT_EQ(f.train.class_names[0], "T-shirt/top");
  EXPECT_EQ(f.train.class_names[9], "Ankle boot");
  EXPECT_NE(f.test.source.find("t10k-images-idx3-ubyte.gz"), std::string::npos);
}

TEST(DataLoad, PartialFolderNamesTheMissingFiles) {
  TempDir t;
  write_idx_folder(t.path + "/mnist", 4, 2, true);
  fs::remove(t.path + "/mnist/t10k-labels-idx1-ubyte.gz");
  const std::string e = error_of([&] { load_dataset("mnist", t.path); });
  EXPECT_NE(e.find("missing: t10k-labels-idx1-ubyte[.gz]"), std::string::npos) << e;
}

TEST(DataLoad, FashionMnistFromDebianLayout) {
  TempDir data, debian;
  write_idx_folder(debian.path + "/fashion-mnist", 12, 3, true);
  ScopedEnv env("TRAINBENCH_DEBIAN_DATASETS", debian.path);
  const DatasetFiles f = load_dataset("fashion-mnist", data.path);
  EXPECT_EQ(f.train.size(), 12);
  EXPECT_NE(f.train.source.find("Debian package dataset-fashion-mnist"), std::string::npos);
  fs::remove_all(debian.path + "/fashion-mnist");
  const std::string e = error_of([&] { load_dataset("fashion-mnist", data.path); });
  EXPECT_NE(e.find("also looked in " + debian.path + "/fashion-mnist"), std::string::npos) << e;
}

// The real files, when this machine has them: $TRAINBENCH_DATA, else ../shared/data.
std::string real_data_dir() {
  if (const char* env = getenv("TRAINBENCH_DATA"); env && *env) return env;
  return std::string(TB_SOURCE_DIR) + "/../shared/data";
}

TEST(DataLoad, RealMnistAndFashionMnist) {
  const std::string dir = real_data_dir();
  if (!fs::exists(dir + "/mnist/train-images-idx3-ubyte.gz") &&
      !fs::exists(dir + "/mnist/train-images-idx3-ubyte"))
    GTEST_SKIP() << "no MNIST under " << dir;
  const DatasetFiles m = load_dataset("mnist", dir);
  EXPECT_EQ(m.train.size(), 60000);
  EXPECT_EQ(m.test.size(), 10000);
  EXPECT_EQ(m.train.height, 28);
  EXPECT_EQ(m.train.labels[0], 5);  // the famous first digit
  EXPECT_EQ(m.test.labels[0], 7);
  if (fs::exists(dir + "/fashion-mnist/train-images-idx3-ubyte.gz")) {
    const DatasetFiles f = load_dataset("fashion-mnist", dir);
    EXPECT_EQ(f.train.size(), 60000);
    EXPECT_EQ(f.train.labels[0], 9);  // Ankle boot
  }
}

// ---- CIFAR-10 ----

std::string cifar_records(int n, int first_label = 0) {
  std::string s;
  for (int r = 0; r < n; ++r) {
    s += char((first_label + r) % 10);
    for (int i = 0; i < 3072; ++i) s += char((r + i / 1024 * 50 + i % 7) % 256);
  }
  return s;
}

void write_cifar_folder(const std::string& dir, int per_batch) {
  const std::string folder = dir + "/cifar-10-batches-bin";
  fs::create_directories(folder);
  for (const auto& name : cifar_train_batch_names())
    write_bytes(folder + "/" + name, cifar_records(per_batch), false);
  write_bytes(folder + "/test_batch.bin", cifar_records(per_batch, 3), false);
}

TEST(DataCifar, ReadsBatchesAsNchw) {
  TempDir t;
  write_cifar_folder(t.path, 10);
  const DatasetFiles c = load_dataset("cifar-10", t.path);
  EXPECT_EQ(c.train.size(), 50);
  EXPECT_EQ(c.test.size(), 10);
  EXPECT_EQ(c.train.channels, 3);
  EXPECT_EQ(c.train.height, 32);
  EXPECT_EQ(c.train.class_names[1], "automobile");
  EXPECT_EQ(c.test.labels[0], 3);
  // Pixel i of record r was written as (r + plane * 50 + i % 7) % 256; NCHW keeps it at i.
  auto value = [](int r, int i) { return (r + i / 1024 * 50 + i % 7) % 256; };
  for (int i : {0, 1023, 1024, 2048 + 5, 3071}) EXPECT_EQ(c.train.image(2)[i], value(2, i)) << i;
  EXPECT_EQ(c.train.image(12)[100], value(2, 100));  // batch 2 starts again at record 0
}

TEST(DataCifar, MetaFileNamesTheClasses) {
  TempDir t;
  write_cifar_folder(t.path, 10);
  std::ofstream(t.path + "/cifar-10-batches-bin/batches.meta.txt")
      << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
  EXPECT_EQ(load_dataset("cifar10", t.path).train.class_names[9], "j");
  std::ofstream(t.path + "/cifar-10-batches-bin/batches.meta.txt") << "a\nb\n";
  EXPECT_NE(error_of([&] { load_dataset("cifar10", t.path); }).find("expected 10 class names"),
            std::string::npos);
}

TEST(DataCifar, BadSizeAndLabel) {
  TempDir t;
  const std::string p = t.path + "/b.bin";
  write_bytes(p, cifar_records(2) + "xyz", false);
  std::string e = error_of([&] { read_cifar_batches({p}); });
  EXPECT_NE(e.find(p + ": size 6149 bytes is not a positive multiple of the 3073-byte"),
            std::string::npos)
      << e;
  std::string bad = cifar_records(2);
  bad[3073] = 10;
  write_bytes(p, bad, false);
  e = error_of([&] { read_cifar_batches({p}); });
  EXPECT_NE(e.find(p + ": label 10 in record 1 is out of range"), std::string::npos) << e;
}

// ---- digit CSV ----

std::string csv_header(bool labelled) {
  std::string h = labelled ? "label" : "";
  for (int i = 0; i < 784; ++i) h += (h.empty() ? "" : ",") + ("pixel" + std::to_string(i));
  return h + "\n";
}

std::string csv_row(int label, int seed) {
  std::string r = label >= 0 ? std::to_string(label) : "";
  for (int i = 0; i < 784; ++i) r += (r.empty() ? "" : ",") + std::to_string((i + seed) % 256);
  return r + "\n";
}

TEST(DataCsv, LabelledAndPredictionSets) {
  TempDir t;
  const std::string p = t.path + "/train.csv", q = t.path + "/test.csv";
  std::ofstream(p) << csv_header(true) << csv_row(3, 0) << csv_row(9, 5) << "\n";
  const Dataset d = read_digit_csv(p);
  EXPECT_EQ(d.name, "digit-csv");
  EXPECT_EQ(d.size(), 2);
  EXPECT_EQ(d.labels[1], 9);
  EXPECT_EQ(d.image(1)[0], 5);
  EXPECT_EQ(d.image(0)[783], 783 % 256);
  std::ofstream(q) << csv_header(false) << csv_row(-1, 1);
  const Dataset pred = read_digit_csv(q);
  EXPECT_FALSE(pred.has_labels());
  EXPECT_EQ(pred.size(), 1);
}

TEST(DataCsv, ErrorsNameFileAndLine) {
  TempDir t;
  const std::string p = t.path + "/bad.csv";
  std::string row = csv_row(1, 0);
  std::ofstream(p) << csv_header(true) << csv_row(1, 0) << row.substr(0, row.rfind(',')) << "\n";
  EXPECT_NE(error_of([&] { read_digit_csv(p); }).find(p + ":3: 784 columns, expected 785"),
            std::string::npos);
  std::ofstream(p) << csv_header(true) << "1,256" << row.substr(row.find(',', 2));
  std::string e = error_of([&] { read_digit_csv(p); });
  EXPECT_NE(e.find(p + ":2: column 2 (pixel0) value '256' is not an integer 0..255"),
            std::string::npos)
      << e;
  std::ofstream(p) << csv_header(true) << "1,-1" << row.substr(row.find(',', 2));
  EXPECT_NE(error_of([&] { read_digit_csv(p); }).find("value '-1'"), std::string::npos);
  std::ofstream(p) << csv_header(true) << "12" << row.substr(1);
  EXPECT_NE(error_of([&] { read_digit_csv(p); }).find(p + ":2: label '12' is not an integer 0..9"),
            std::string::npos);
  std::ofstream(p) << "label,pixel0,pixel1\n1,2,3\n";
  EXPECT_NE(error_of([&] { read_digit_csv(p); }).find(p + ":1: header has 3 columns"),
            std::string::npos);
  std::ofstream(p) << csv_header(true);
  EXPECT_NE(error_of([&] { read_digit_csv(p); }).find("header but no rows"), std::string::npos);
}

TEST(DataCsv, LoadDatasetUsesOnlyALabelledTestCsv) {
  TempDir t;
  fs::create_directories(t.path + "/digit-csv");
  std::ofstream(t.path + "/digit-csv/train.csv")
      << csv_header(true) << csv_row(1, 0) << csv_row(2, 1);
  std::ofstream(t.path + "/digit-csv/test.csv") << csv_header(false) << csv_row(-1, 3);
  DatasetFiles f = load_dataset("digit-csv", t.path);
  EXPECT_EQ(f.train.size(), 2);
  EXPECT_FALSE(f.has_test);
  std::ofstream(t.path + "/digit-csv/test.csv") << csv_header(true) << csv_row(4, 3);
  f = load_dataset("digit-csv", t.path);
  EXPECT_TRUE(f.has_test);
  EXPECT_EQ(f.test.labels[0], 4);
  fs::remove(t.path + "/digit-csv/train.csv");
  EXPECT_NE(error_of([&] { load_dataset("digit-csv", t.path); }).find("digit-csv not found under"),
            std::string::npos);
}

}  // namespace
}  // namespace tb
