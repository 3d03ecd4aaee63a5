// The fetcher's catalogue of sources and checksums, checksum verification, staging, curl.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "core/error.h"
#include "data/fetch_internal.h"
#include "data/md5.h"
#include "data/subprocess.h"

namespace tb::fetch_detail {

const IdxDatasetSpec& idx_dataset_spec(const std::string& name) {
  // Checksums: the .gz MD5s are those the dataset authors publish; the payload MD5s were
  // computed on the decompressed official files. Both are accepted (see verify_idx_file).
  static const IdxDatasetSpec mnist{
      "mnist",
      // PyTorch's mirror first: yann.lecun.com often answers 403 or times out nowadays.
      {"https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"},
      {{"train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb"},
       {"train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624"},
       {"t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea"},
       {"t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637"}}};
  static const IdxDatasetSpec fashion{
      "fashion-mnist",
      {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"},
      {{"train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a"},
       {"train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9"},
       {"t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a"},
       {"t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965"}}};
  if (name == "mnist") return mnist;
  if (name == "fashion-mnist") return fashion;
  TB_FAIL("no IDX source for dataset '{}'", name);
}

std::string verify_idx_file(const std::string& path, const IdxFileSpec& spec) {
  try {
    const std::string file_md5 = md5_of_file(path);
    if (file_md5 == spec.gz_md5) return "";
    const std::string payload_md5 = md5_of_payload(path);
    if (payload_md5 == spec.payload_md5) return "";
    return fmt::format(
        "checksum mismatch for {}: file MD5 {} (published .gz: {}), decompressed MD5 {} "
        "(expected {})",
        path, file_md5, spec.gz_md5, payload_md5, spec.payload_md5);
  } catch (const InputError& e) {
    return e.what();  // e.g. corrupt gzip: the message names the file
  }
}

std::string Staging::add(const std::string& final_path) {
  temps_.push_back(std::make_unique<fsutil::TempFile>(fsutil::temp_path_for(final_path)));
  finals_.push_back(final_path);
  return temps_.back()->path();
}

void Staging::install(bool drop_other_idx_variant) {
  for (size_t i = 0; i < temps_.size(); ++i) {
    fsutil::rename_into_place(temps_[i]->path(), finals_[i]);
    temps_[i]->release();
    if (drop_other_idx_variant) {
      const std::string& f = finals_[i];
      const bool gz = f.size() > 3 && f.compare(f.size() - 3, 3, ".gz") == 0;
      fsutil::remove_quietly(gz ? f.substr(0, f.size() - 3) : f + ".gz");
    }
  }
}

std::string curl_download(const std::string& url, const std::string& path, const FetchLog& log) {
  const char* env = std::getenv("TRAINBENCH_CURL");
  const std::string curl = env && *env ? env : "curl";
  if (!program_available(curl)) return fmt::format("'{}' not found; install curl", curl);
  log(fmt::format("  downloading {}", url));
  // Generous ceiling: CIFAR-10 is 170 MB; curl's own timeouts handle dead connections.
  const ProcessResult r = run_process(
      {curl, "-fsSL", "--retry", "2", "--connect-timeout", "15", "-o", path, url}, "", 3600);
  if (!r.started) return fmt::format("could not run {}: {}", curl, r.output);
  if (r.timed_out) return fmt::format("{} timed out after an hour", url);
  if (r.exit_code != 0) {
    // One line, each distinct curl line once: with --retry, curl repeats the same error.
    std::string message;
    std::vector<std::string> seen;
    size_t pos = 0;
    while (pos < r.output.size()) {
      size_t end = r.output.find('\n', pos);
      if (end == std::string::npos) end = r.output.size();
      std::string line = r.output.substr(pos, end - pos);
      pos = end + 1;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || std::find(seen.begin(), seen.end(), line) != seen.end()) continue;
      seen.push_back(line);
      message += (message.empty() ? "" : " ") + line;
    }
    // curl -f exits 22 on an HTTP status >= 400 and prints it; other codes are network errors.
    return fmt::format("{}: curl exit {}{}{}", url, r.exit_code,
                       r.exit_code == 22 ? " (HTTP error)" : "",
                       message.empty() ? "" : ": " + message);
  }
  return "";
}

}  // namespace tb::fetch_detail
