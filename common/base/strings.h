#pragma once
// Small string helpers used on the data path: no allocation unless the signature says so.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral {

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

/// ASCII case-insensitive equality.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

inline std::string to_lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = ascii_lower(c);
  return r;
}

/// Strips spaces and tabs at both ends.
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Parses a non-empty run of decimal digits; nullopt on anything else or overflow.
inline std::optional<uint64_t> parse_decimal(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

/// The parts with `sep` between them ("a, b, c").
inline std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

/// True when the comma-separated list `list` holds `token` (any case). Each element is
/// trimmed and cut at the first of `cut` ("gzip;q=1" is gzip; with "/" too, "websocket/13"
/// is websocket).
inline bool list_contains(std::string_view list, std::string_view token, std::string_view cut = ";") {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    item = trim_ows(item.substr(0, item.find_first_of(cut)));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

/// Splits on a single character; empty pieces are kept.
std::vector<std::string_view> split(std::string_view s, char sep);

}  // namespace corral
