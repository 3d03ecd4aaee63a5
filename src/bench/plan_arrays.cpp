#include "bench/plan_arrays.h"

#include <zlib.h>

#include <bit>
#include <cstring>

#include "core/error.h"

namespace tb {
namespace {

static_assert(std::endian::native == std::endian::little,
              "plan arrays are written in host byte order, which must be little-endian");

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string deflate_bytes(const void* data, size_t n) {
  uLongf size = compressBound(uLong(n));
  std::string out(size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size,
                           static_cast<const Bytef*>(data), uLong(n), 6);
  TB_CHECK(rc == Z_OK, "zlib compress2 failed with {}", rc);
  out.resize(size);
  return out;
}

std::string inflate_bytes(const std::string& in, size_t expected, const std::string& what) {
  std::string out(expected, '\0');
  uLongf size = uLongf(expected);
  const int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &size,
                            reinterpret_cast<const Bytef*>(in.data()), uLong(in.size()));
  TB_INPUT_CHECK(rc == Z_OK && size == expected,
                 "{}: array data does not inflate to {} bytes (zlib code {})", what, expected, rc);
  return out;
}

template <class T>
nlohmann::json encode(const std::vector<T>& values, std::vector<int64_t> shape,
                      const char* dtype) {
  int64_t n = 1;
  if (shape.empty()) shape = {int64_t(values.size())};
  for (int64_t d : shape) n *= d;
  TB_CHECK(n == int64_t(values.size()), "array of {} values given shape of {}", values.size(), n);
  return {{"dtype", dtype},
          {"shape", shape},
          {"encoding", "zlib+base64"},
          {"data", base64_encode(deflate_bytes(values.data(), values.size() * sizeof(T)))}};
}

template <class T>
std::vector<T> decode(const nlohmann::json& a, const char* dtype, const std::string& what) {
  try {
    TB_INPUT_CHECK(a.at("dtype") == dtype, "{}: array of {}, expected {}", what,
                   a.at("dtype").dump(), dtype);
    TB_INPUT_CHECK(a.at("encoding") == "zlib+base64", "{}: unknown array encoding {}", what,
                   a.at("encoding").dump());
    int64_t n = 1;
    for (const auto& d : a.at("shape")) n *= d.get<int64_t>();
    TB_INPUT_CHECK(n >= 0, "{}: negative array size", what);
    const std::string raw =
        inflate_bytes(base64_decode(a.at("data").get<std::string>(), what), size_t(n) * sizeof(T),
                      what);
    std::vector<T> out(size_t(n));
    if (n) std::memcpy(out.data(), raw.data(), raw.size());
    return out;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(what + ": malformed array: " + e.what());
  }
}

}  // namespace

nlohmann::json encode_array(const std::vector<int32_t>& values, std::vector<int64_t> shape) {
  return encode(values, std::move(shape), "int32");
}
nlohmann::json encode_array(const std::vector<uint8_t>& values, std::vector<int64_t> shape) {
  return encode(values, std::move(shape), "uint8");
}
std::vector<int32_t> decode_int32_array(const nlohmann::json& array, const std::string& what) {
  return decode<int32_t>(array, "int32", what);
}
std::vector<uint8_t> decode_uint8_array(const nlohmann::json& array, const std::string& what) {
  return decode<uint8_t>(array, "uint8", what);
}

std::string base64_encode(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                       uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& what) {
  int8_t value[256];
  std::memset(value, -1, sizeof value);
  for (int k = 0; k < 64; ++k) value[uint8_t(kAlphabet[k])] = int8_t(k);
  TB_INPUT_CHECK(text.size() % 4 == 0, "{}: base64 text of {} characters", what, text.size());
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      TB_INPUT_CHECK(!pad && value[uint8_t(c)] >= 0, "{}: not base64 at character {}", what,
                     i + k);
      v = v << 6 | uint32_t(value[uint8_t(c)]);
    }
    out += char(v >> 16);
    if (pad < 2) out += char((v >> 8) & 255);
    if (pad < 1) out += char(v & 255);
  }
  return out;
}

}  // namespace tb
