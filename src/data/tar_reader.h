// A small reader for (gzip-compressed) tar archives: ustar headers, GNU long names and pax
// path/size records, streamed so a 180 MB archive never sits in memory. Enough for the
// CIFAR-10 release and npm package tarballs; it extracts nothing itself, the caller decides
// what to keep (and must check paths with is_safe_relative_path before writing anything).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace tb {

struct TarEntry {
  std::string path;   // as stored (prefix/name, or the long name / pax path)
  char type = '0';    // '0' regular file, '5' directory, '2' symlink, ...
  uint64_t size = 0;  // bytes of data that follow the header
  bool is_regular() const { return type == '0' || type == '\0' || type == '7'; }
};

// Receives an entry's data in pieces, in order.
using TarSink = std::function<void(const char* data, size_t n)>;

// Calls on_entry for every entry (pax and long-name records are consumed, not reported). If
// it returns a sink, the entry's data is streamed into it; an empty function skips the data.
// The archive may be gzip-compressed or plain. Corrupt or truncated archives throw InputError
// naming the path.
void read_tar(const std::string& path, const std::function<TarSink(const TarEntry&)>& on_entry);

// True for a relative path with no "..", no empty name and no leading '/': safe to join to an
// output folder. Archives from a mirror are not trusted not to escape it.
bool is_safe_relative_path(std::string_view path);

}  // namespace tb
