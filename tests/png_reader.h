// A minimal PNG decoder for tests that check screenshots: 8-bit greyscale, RGB or RGBA,
// not interlaced (what Chromium writes). Returns RGBA pixels, or an empty image if the file
// is anything else.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace tb::testing {

struct RgbaImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 4
};

inline RgbaImage decode_png(const std::string& file) {
  auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(file[at])) << 24 | uint32_t(uint8_t(file[at + 1])) << 16 |
           uint32_t(uint8_t(file[at + 2])) << 8 | uint32_t(uint8_t(file[at + 3]));
  };
  if (file.size() < 8 || file.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return {};
  int width = 0, height = 0, channels = 0;
  std::string idat;
  for (size_t at = 8; at + 8 <= file.size();) {
    const uint32_t length = be32(at);
    const std::string type = file.substr(at + 4, 4);
    if (at + 12 + length > file.size()) return {};
    const size_t data = at + 8;
    if (type == "IHDR") {
      width = int(be32(data));
      height = int(be32(data + 4));
      const int depth = uint8_t(file[data + 8]), color = uint8_t(file[data + 9]);
      const int interlace = uint8_t(file[data + 12]);
      if (depth != 8 || interlace != 0) return {};
      channels = color == 0 ? 1 : color == 2 ? 3 : color == 6 ? 4 : 0;
      if (!channels) return {};
    } else if (type == "IDAT") {
      idat.append(file, data, length);
    } else if (type == "IEND") {
      break;
    }
    at += 12 + length;
  }
  if (width <= 0 || height <= 0) return {};
  const size_t stride = size_t(width) * channels;
  std::vector<uint8_t> raw((stride + 1) * size_t(height));
  uLongf raw_size = uLongf(raw.size());
  if (uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()),
                 uLong(idat.size())) != Z_OK ||
      raw_size != raw.size())
    return {};
  // Undo the per-row filters (PNG spec section 9).
  std::vector<uint8_t> prev(stride, 0), row(stride);
  RgbaImage image{width, height, std::vector<uint8_t>(size_t(width) * height * 4)};
  for (int y = 0; y < height; ++y) {
    const uint8_t* in = raw.data() + size_t(y) * (stride + 1);
    const int filter = in[0];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(channels) ? row[i - channels] : 0, b = prev[i],
                c = i >= size_t(channels) ? prev[i - channels] : 0;
      int predicted = 0;
      switch (filter) {
        case 0:
          predicted = 0;
          break;
        case 1:
          predicted = a;
          break;
        case 2:
          predicted = b;
          break;
        case 3:
          predicted = (a + b) / 2;
          break;
        case 4: {
          const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          return {};
      }
      row[i] = uint8_t(in[1 + i] + predicted);
    }
    for (int x = 0; x < width; ++x) {
      uint8_t* out = image.pixels.data() + (size_t(y) * width + x) * 4;
      const uint8_t* px = row.data() + size_t(x) * channels;
      out[0] = px[0];
      out[1] = channels >= 3 ? px[1] : px[0];
      out[2] = channels >= 3 ? px[2] : px[0];
      out[3] = channels == 4 ? px[3] : 255;
    }
    std::swap(prev, row);
  }
  return image;
}

}  // namespace tb::testing
