// Integer arrays inside JSON, compactly: the little-endian bytes, deflated with zlib, then
// base64. A run plan holds tens of thousands of indices per epoch; as JSON numbers they
// would be several times larger and slower for Python to read.
//   {"dtype": "int32" | "uint8", "shape": [...], "encoding": "zlib+base64", "data": "..."}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tb {

// shape {} means one dimension of values.size().
nlohmann::json encode_array(const std::vector<int32_t>& values, std::vector<int64_t> shape = {});
nlohmann::json encode_array(const std::vector<uint8_t>& values, std::vector<int64_t> shape = {});

// Throw InputError (naming `what`) for a wrong dtype, encoding, or size.
std::vector<int32_t> decode_int32_array(const nlohmann::json& array, const std::string& what);
std::vector<uint8_t> decode_uint8_array(const nlohmann::json& array, const std::string& what);

}  // namespace tb
