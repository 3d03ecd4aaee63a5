#include "data/tar_reader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "data/gz_file.h"

namespace tb {
namespace {

constexpr size_t kBlock = 512;

std::string field(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

// Numeric header fields are octal text, or big-endian base-256 when the top bit is set (GNU's
// encoding for sizes of 8 GiB and more).
bool parse_number(const char* p, size_t n, uint64_t& out) {
  out = 0;
  if (static_cast<unsigned char>(p[0]) & 0x80) {
    for (size_t i = 1; i < n; ++i) out = (out << 8) | static_cast<unsigned char>(p[i]);
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  bool any = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i, any = true) out = out * 8 + uint64_t(p[i] - '0');
  for (; i < n; ++i)
    if (p[i] != ' ' && p[i] != '\0') return false;
  return any;
}

bool checksum_ok(const unsigned char* h) {
  uint64_t stored = 0;
  if (!parse_number(reinterpret_cast<const char*>(h) + 148, 8, stored)) return false;
  uint64_t sum = 0;
  for (size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  return sum == stored;
}

class TarStream {
 public:
  explicit TarStream(const std::string& path) : in_(path) {}
  const std::string& path() const { return in_.path(); }

  // One whole block, or false at a clean end of file; a partial block is an error.
  bool block(unsigned char* out) {
    const size_t got = in_.read(out, kBlock);
    if (got == 0) return false;
    if (got < kBlock) throw InputError(fmt::format("{}: truncated tar archive", path()));
    return true;
  }

  // Streams size bytes of entry data (plus padding to the block) to sink, or skips them.
  void data(uint64_t size, const TarSink& sink) {
    std::vector<char> buf(1 << 16);
    const uint64_t padded = (size + kBlock - 1) / kBlock * kBlock;
    for (uint64_t done = 0; done < padded;) {
      const size_t want = size_t(std::min<uint64_t>(buf.size(), padded - done));
      const size_t got = in_.read(buf.data(), want);
      if (got < want) throw InputError(fmt::format("{}: truncated tar archive", path()));
      if (sink && done < size) sink(buf.data(), size_t(std::min<uint64_t>(got, size - done)));
      done += got;
    }
  }

  std::string read_text(uint64_t size) {
    if (size > (1u << 20)) throw InputError(fmt::format("{}: oversized tar metadata", path()));
    std::string text;
    data(size, [&](const char* p, size_t n) { text.append(p, n); });
    return text;
  }

 private:
  GzFile in_;
};

// pax extended header: records "LEN key=value\n". We honour path and size.
void apply_pax(const std::string& text, std::string& path, uint64_t& size, bool& has_size) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t space = text.find(' ', pos);
    if (space == std::string::npos) break;
    const uint64_t len = std::strtoull(text.c_str() + pos, nullptr, 10);
    if (len == 0 || pos + len > text.size()) break;
    const std::string record = text.substr(space + 1, pos + len - space - 2);  // drop '\n'
    const size_t eq = record.find('=');
    if (eq != std::string::npos) {
      const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
      if (key == "path") path = value;
      if (key == "size") {
        size = std::strtoull(value.c_str(), nullptr, 10);
        has_size = true;
      }
    }
    pos += len;
  }
}

}  // namespace

void read_tar(const std::string& path, const std::function<TarSink(const TarEntry&)>& on_entry) {
  TarStream tar(path);
  unsigned char h[kBlock];
  std::string long_name;  // from a GNU 'L' record or a pax 'x' record, for the next entry
  uint64_t pax_size = 0;
  bool has_pax_size = false;
  bool any = false;
  while (tar.block(h)) {
    bool zero = true;
    for (unsigned char c : h) zero = zero && c == 0;
    if (zero) {  // end-of-archive marker (a second zero block may follow)
      if (!any) break;
      return;
    }
    if (!checksum_ok(h))
      throw InputError(fmt::format("{}: not a tar archive or corrupt tar header", path));
    any = true;
    const char* hc = reinterpret_cast<const char*>(h);
    TarEntry e;
    e.type = hc[156];
    if (!parse_number(hc + 124, 12, e.size))
      throw InputError(fmt::format("{}: bad size field in a tar header", path));
    if (e.type == 'L') {  // GNU long name: the data is the next entry's name
      long_name = tar.read_text(e.size);
      long_name.resize(strnlen(long_name.c_str(), long_name.size()));
      continue;
    }
    if (e.type == 'x') {  // pax header for the next entry
      apply_pax(tar.read_text(e.size), long_name, pax_size, has_pax_size);
      continue;
    }
    if (e.type == 'g') {  // pax global header: nothing we use
      tar.data(e.size, {});
      continue;
    }
    const std::string name = field(hc, 100), prefix = field(hc + 345, 155);
    const bool ustar = std::memcmp(hc + 257, "ustar", 5) == 0;
    e.path =
        !long_name.empty() ? long_name : (ustar && !prefix.empty() ? prefix + "/" + name : name);
    if (has_pax_size) e.size = pax_size;
    long_name.clear();
    has_pax_size = false;
    // Links and directories carry no data in the archive, whatever the size field says.
    const uint64_t data_size = (e.type == '1' || e.type == '2' || e.type == '5') ? 0 : e.size;
    tar.data(data_size, on_entry(e));
  }
  // End of file without the zero blocks: tolerated (some writers omit them) if we saw entries.
  if (!any) throw InputError(fmt::format("{}: empty tar archive", path));
}

bool is_safe_relative_path(std::string_view path) {
  if (path.empty() || path.front() == '/') return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part == "..") return false;
    if (part.empty() && end != path.size()) return false;  // "a//b"; a trailing '/' is a folder
    start = end + 1;
  }
  return path.find('\0') == std::string_view::npos;
}

}  // namespace tb
