// write_file_atomic / append_line_atomic / read_file: contents, replacement, no temp files
// left behind, and errors that name the path.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace tb {
namespace {

namespace fs = std::filesystem;

// A fresh folder per test, removed after it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tb_atomic_XXXXXX").string();
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

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(AtomicFile, WritesAndReadsBack) {
  TempDir dir;
  const std::string path = dir.file("a.txt");
  const std::string binary("x\0y\n\xff", 5);
  write_file_atomic(path, binary);
  EXPECT_EQ(read_file(path), binary);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, ReplacesExistingFile) {
  TempDir dir;
  const std::string path = dir.file("a.txt");
  write_file_atomic(path, "a much longer first version\n");
  write_file_atomic(path, "short");
  EXPECT_EQ(read_file(path), "short");
  write_file_atomic(path, "");
  EXPECT_EQ(read_file(path), "");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"a.txt"});
}

TEST(AtomicFile, ReplacementIsANewFileNotAnInPlaceEdit) {
  // Rename swaps in a new inode: a reader holding the old file keeps seeing the old bytes.
  TempDir dir;
  const std::string path = dir.file("a.txt");
  write_file_atomic(path, "old");
  std::ifstream reader(path);
  write_file_atomic(path, "new!");
  std::string seen((std::istreambuf_iterator<char>(reader)), std::istreambuf_iterator<char>());
  EXPECT_EQ(seen, "old");
  EXPECT_EQ(read_file(path), "new!");
}

TEST(AtomicFile, RelativePathInCurrentFolder) {
  TempDir dir;
  const fs::path old = fs::current_path();
  fs::current_path(dir.path);
  write_file_atomic("rel.txt", "r");
  fs::current_path(old);
  EXPECT_EQ(read_file(dir.file("rel.txt")), "r");
}

TEST(AtomicFile, MissingFolderNamesPathAndLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/a.txt");
  const std::string msg = error_of([&] { write_file_atomic(path, "x"); });
  EXPECT_NE(msg.find("cannot write " + path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  EXPECT_TRUE(dir.entries().empty());
}

TEST(AtomicFile, FailedRenameRemovesTempFile) {
  // Renaming a file over a non-empty folder fails after the temp file was written.
  TempDir dir;
  const std::string target = dir.file("taken");
  fs::create_directory(target);
  std::ofstream(dir.file("taken/inside")) << "x";
  const std::string msg = error_of([&] { write_file_atomic(target, "data"); });
  EXPECT_NE(msg.find("cannot write " + target), std::string::npos) << msg;
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken"});
}

TEST(AtomicFile, AppendLines) {
  TempDir dir;
  const std::string path = dir.file("results.jsonl");
  append_line_atomic(path, R"({"a":1})");
  append_line_atomic(path, R"({"b":2})");
  append_line_atomic(path, "");
  EXPECT_EQ(read_file(path), "{\"a\":1}\n{\"b\":2}\n\n");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"results.jsonl"});
}

TEST(AtomicFile, AppendAfterFileWithoutFinalNewline) {
  TempDir dir;
  const std::string path = dir.file("hand-edited.jsonl");
  std::ofstream(path) << "first";
  append_line_atomic(path, "second");
  EXPECT_EQ(read_file(path), "first\nsecond\n");
}

TEST(AtomicFile, AppendIntoMissingFolderFails) {
  TempDir dir;
  const std::string path = dir.file("missing/r.jsonl");
  EXPECT_NE(error_of([&] { append_line_atomic(path, "x"); }).find(path), std::string::npos);
}

TEST(AtomicFile, AppendToUnreadableFileFails) {
  // An existing file that cannot be read must not be replaced by just the new line.
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir;
  const std::string path = dir.file("locked.jsonl");
  std::ofstream(path) << "precious\n";
  fs::permissions(path, fs::perms::none);
  const std::string msg = error_of([&] { append_line_atomic(path, "x"); });
  fs::permissions(path, fs::perms::owner_all);
  EXPECT_NE(msg.find("cannot read " + path), std::string::npos) << msg;
  EXPECT_EQ(read_file(path), "precious\n");
}

TEST(AtomicFile, AppendToAFolderFailsAndKeepsIt) {
  // The non-"missing" read errors must stop the append, as root too.
  TempDir dir;
  const std::string target = dir.file("results");
  fs::create_directory(target);
  const std::string msg = error_of([&] { append_line_atomic(target, "x"); });
  EXPECT_EQ(msg, "cannot read " + target + ": Is a directory");
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"results"});
}

TEST(AtomicFile, ReadMissingFileNamesPath) {
  TempDir dir;
  const std::string path = dir.file("absent.bin");
  EXPECT_EQ(error_of([&] { read_file(path); }),
            "cannot read " + path + ": No such file or directory");
}

TEST(AtomicFile, ReadFolderFails) {
  TempDir dir;
  const std::string msg = error_of([&] { read_file(dir.path.string()); });
  EXPECT_NE(msg.find("cannot read " + dir.path.string()), std::string::npos) << msg;
}

TEST(AtomicFile, ReadLargeFile) {
  TempDir dir;
  std::string big(3 * 65536 + 17, 'q');
  for (size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>(i);
  write_file_atomic(dir.file("big"), big);
  EXPECT_EQ(read_file(dir.file("big")), big);
}

}  // namespace
}  // namespace tb
