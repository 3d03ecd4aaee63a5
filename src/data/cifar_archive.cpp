// Unpacking cifar-10-binary.tar.gz with our own tar reader (no `tar` process, no shell).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "data/cifar_reader.h"
#include "data/dataset_layout.h"
#include "data/fetch_internal.h"
#include "data/tar_reader.h"

namespace tb::fetch_detail {
namespace {

constexpr const char* kTopFolder = "cifar-10-batches-bin/";

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

struct StagingDir {
  std::string path;
  ~StagingDir() { fsutil::remove_tree_quietly(path); }
};

}  // namespace

void extract_cifar_archive(const std::string& archive, const std::string& data_dir,
                           const FetchLog& log) {
  const std::string final_dir = data_dir + "/" + dataset_folder("cifar10");
  // A hidden folder next to the final one: same file system, so the renames are atomic, and
  // invisible to the loader if we are interrupted.
  StagingDir staging{fmt::format("{}/.cifar-10-batches-bin.part-{}", data_dir, ::getpid())};
  fsutil::remove_tree_quietly(staging.path);
  fsutil::make_dirs(staging.path);
  log(fmt::format("  extracting {}", archive));

  std::vector<std::string> names;
  std::unique_ptr<FILE, FileCloser> out;
  read_tar(archive, [&](const TarEntry& e) -> TarSink {
    if (!is_safe_relative_path(e.path))
      throw InputError(
          fmt::format("{}: refusing unsafe path '{}' in the archive", archive, e.path));
    const std::string top = kTopFolder;
    if (!e.is_regular() || e.path.compare(0, top.size(), top) != 0) return {};
    const std::string name = e.path.substr(top.size());
    if (name.empty() || name.find('/') != std::string::npos) return {};  // the release is flat
    const std::string path = staging.path + "/" + name;
    out.reset(std::fopen(path.c_str(), "wb"));  // closes the previous entry's file
    if (!out) throw InputError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
    names.push_back(name);
    FILE* f = out.get();
    return [f, path](const char* p, size_t n) {
      if (std::fwrite(p, 1, n, f) != n) throw InputError(fmt::format("{}: write failed", path));
    };
  });
  if (out && (std::fflush(out.get()) != 0 || std::ferror(out.get())))
    throw InputError(fmt::format("{}: write failed while extracting", staging.path));
  out.reset();

  // Read the staged batches completely before publishing anything.
  const DatasetFiles files = read_cifar10(staging.path);
  log(fmt::format("  checked: {} training and {} test images", files.train.size(),
                  files.test.size()));
  fsutil::make_dirs(final_dir);
  for (const auto& name : names)
    fsutil::rename_into_place(staging.path + "/" + name, final_dir + "/" + name);
}

}  // namespace tb::fetch_detail
