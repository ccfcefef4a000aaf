#include "conf/diagnostics.h"

#include <algorithm>
#include <cstdint>

#include "common/base/strings.h"

namespace corral::conf {

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (column > 0) out += ':' + std::to_string(column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  if (!hint.empty()) out += "; " + hint;
  // Keys and values are quoted from the file: a control character in them (a NUL, an
  // escape sequence, a line break from a TOML escape) must not reach a terminal or a log.
  std::string clean;
  clean.reserve(out.size());
  for (char c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      clean.push_back(c);
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    clean += "\\x";
    clean.push_back(kHex[u >> 4]);
    clean.push_back(kHex[u & 0xf]);
  }
  return clean;
}

std::string Diagnostics::to_string() const {
  std::string out;
  for (auto& d : items) out += d.to_string() + '\n';
  return out;
}

void Diagnostics::sort_by_position() {
  std::stable_sort(items.begin(), items.end(), [](const Diagnostic& a, const Diagnostic& b) {
    // Line 0 (unknown position, whole-file checks) sorts after every located item.
    auto rank = [](const Diagnostic& d) {
      return std::pair<long, long>(d.line > 0 ? d.line : 1L << 30, d.column);
    };
    return rank(a) < rank(b);
  });
}

namespace {
// Optimal string alignment distance: insert, delete, substitute, swap two neighbours.
size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && ascii_lower(a[i - 1]) == ascii_lower(b[j - 2]) &&
          ascii_lower(a[i - 2]) == ascii_lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}
}  // namespace

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_distance = SIZE_MAX;
  for (auto c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  if (best.empty()) return {};
  // Plausible typo: at most a third of the longer word, and at least one letter kept.
  size_t longest = std::max(word.size(), best.size());
  size_t allowed = std::max<size_t>(1, longest / 3);
  if (best_distance > allowed || best_distance >= longest) return {};
  return std::string(best);
}

}  // namespace corral::conf
