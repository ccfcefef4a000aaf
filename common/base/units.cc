#include "common/base/units.h"

#include <cctype>
#include <cmath>
#include <string>

namespace corral {
namespace {
bool split_number(std::string_view s, double& num, std::string& unit) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return false;
  std::string n(s.substr(0, i));
  if (n.front() == '.' || n.back() == '.' || n.find('.') != n.rfind('.')) return false;
  char* end = nullptr;
  num = std::strtod(n.c_str(), &end);
  if (end != n.c_str() + n.size()) return false;
  size_t j = i;
  while (j < s.size() && s[j] == ' ') ++j;
  unit.clear();
  for (; j < s.size(); ++j) unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[j]))));
  return true;
}
}  // namespace

std::optional<Millis> parse_duration(std::string_view s) {
  double num;
  std::string unit;
  if (!split_number(s, num, unit)) return std::nullopt;
  double ms;
  if (unit == "ms") ms = num;
  else if (unit.empty() || unit == "s") ms = num * 1000;
  else if (unit == "m" || unit == "min") ms = num * 60'000;
  else if (unit == "h") ms = num * 3'600'000;
  else return std::nullopt;
  if (!std::isfinite(ms) || ms > 1e15) return std::nullopt;
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

std::optional<uint64_t> parse_size(std::string_view s) {
  double num;
  std::string unit;
  if (!split_number(s, num, unit)) return std::nullopt;
  double mul;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mul = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") mul = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") mul = 1024.0 * 1024 * 1024;
  else return std::nullopt;
  double v = num * mul;
  if (!std::isfinite(v) || v > 9.0e18) return std::nullopt;
  return static_cast<uint64_t>(std::llround(v));
}

std::string format_duration(Millis d) {
  auto ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace corral
