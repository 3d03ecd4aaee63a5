#include "bench/plan_arrays.h"

#include <zlib.h>

#include <bit>
#include <cstring>

#include "core/error.h"
#include "metrics/base64.h"

namespace tb {
namespace {

static_assert(std::endian::native == std::endian::little,
              "plan arrays are written in host byte order, which must be little-endian");

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

std::string base64_text(const std::string& bytes) {
  return base64_encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
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
          {"data", base64_text(deflate_bytes(values.data(), values.size() * sizeof(T)))}};
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
    const auto packed = base64_decode(a.at("data").get<std::string>());
    TB_INPUT_CHECK(packed.has_value(), "{}: array data is not base64", what);
    const std::string raw = inflate_bytes(std::string(packed->begin(), packed->end()),
                                          size_t(n) * sizeof(T), what);
    std::vector<T> out(static_cast<size_t>(n));
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

}  // namespace tb
