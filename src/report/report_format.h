// How report tables print numbers: units a reader takes in at a glance, and one dash for a
// value a run does not have.
#pragma once
#include <fmt/format.h>

#include <cmath>
#include <string>

namespace tb {

inline constexpr const char* kNoValue = "–";

inline std::string format_seconds(double s) {
  if (!std::isfinite(s) || s <= 0) return kNoValue;
  if (s < 0.01) return fmt::format("{:.2f} ms", s * 1e3);
  if (s < 100) return fmt::format("{:.2f} s", s);
  if (s < 3600) return fmt::format("{:.0f} min {:02.0f} s", std::floor(s / 60), std::fmod(s, 60));
  return fmt::format("{:.0f} h {:02.0f} min", std::floor(s / 3600), std::fmod(s, 3600) / 60);
}

inline std::string format_bytes(double b) {
  if (!std::isfinite(b) || b <= 0) return kNoValue;
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  return fmt::format("{:.0f} MiB", b / (1024.0 * 1024));
}

// A fraction 0..1 as a percentage.
inline std::string format_percent(double f, int decimals = 2) {
  if (!std::isfinite(f)) return kNoValue;
  return fmt::format("{:.{}f}%", 100 * f, decimals);
}

// 1234567 -> "1,234,567"; fractions keep 3 significant digits below 100.
inline std::string format_count(double v) {
  if (!std::isfinite(v)) return kNoValue;
  if (std::fabs(v) < 100) return fmt::format("{:.3g}", v);
  std::string digits = fmt::format("{:.0f}", std::fabs(v)), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

inline std::string format_ratio(double r) {
  if (!std::isfinite(r)) return kNoValue;
  return fmt::format("{:.2f}×", r);
}

inline std::string format_joules(double j) {
  if (!std::isfinite(j)) return kNoValue;
  if (j < 1) return fmt::format("{:.1f} mJ", j * 1e3);
  if (j < 1e4) return fmt::format("{:.1f} J", j);
  return fmt::format("{:.1f} kJ", j / 1e3);
}

}  // namespace tb
