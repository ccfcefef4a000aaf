#include "supervisor/output_level.h"

#include "common/base/strings.h"

namespace corral::supervisor {
namespace {

using log::Level;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t'; }

void skip_spaces(std::string_view& s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
}

// Any level name, case-insensitive: what a bracketed field or a level= key may hold.
std::optional<Level> level_named(std::string_view w) {
  if (w.empty() || w.size() > 13) return std::nullopt;
  char buf[16];
  for (size_t i = 0; i < w.size(); ++i) buf[i] = ascii_lower(w[i]);
  const std::string_view l(buf, w.size());
  if (l == "debug" || l == "trace" || l == "dbg") return Level::Debug;
  if (l == "info" || l == "information" || l == "informational" || l == "notice") return Level::Info;
  if (l == "warn" || l == "warning") return Level::Warn;
  if (l == "error" || l == "err" || l == "critical" || l == "crit" || l == "fatal" || l == "alert" ||
      l == "emerg" || l == "emergency" || l == "panic" || l == "severe")
    return Level::Error;
  return std::nullopt;
}

// A leading word without a colon is a level only for the common spellings ("ERR x" is not).
std::optional<Level> leading_level(std::string_view w) {
  auto l = level_named(w);
  if (!l) return std::nullopt;
  static constexpr std::string_view kBare[] = {"debug", "trace", "info",  "notice",   "warn",
                                               "warning", "error", "critical", "fatal", "panic"};
  for (auto b : kBare)
    if (iequals(w, b)) return l;
  return std::nullopt;
}

bool all_upper(std::string_view w) {
  for (char c : w)
    if (c < 'A' || c > 'Z') return false;
  return true;
}

// A timestamp-like word: digits and date/time punctuation, at least one digit
// ("2024-01-01", "10:00:00,123", "+0000", "2024-01-01T10:00:00.123Z", "2024/01/01").
bool is_time_word(std::string_view w) {
  bool digit = false;
  for (char c : w) {
    if (is_digit(c)) digit = true;
    else if (c != '-' && c != ':' && c != '/' && c != '.' && c != ',' && c != '+' && c != 'T' && c != 'Z') return false;
  }
  return digit;
}

// "[core:error]" → "error"; "[ERROR]" → "ERROR"; " warn " → "warn".
std::optional<Level> bracket_level(std::string_view inside) {
  inside = trim_ows(inside);
  if (auto colon = inside.rfind(':'); colon != std::string_view::npos) inside = inside.substr(colon + 1);
  return level_named(inside);
}

// "PHP Fatal error:  msg" and the like (the kind before the first ':').
std::optional<Level> php_level(std::string_view s) {
  if (s.size() < 5 || s.substr(0, 4) != "PHP ") return std::nullopt;
  s.remove_prefix(4);
  const auto colon = s.find(':');
  if (colon == std::string_view::npos || colon > 32) return std::nullopt;
  const std::string kind = to_lower(s.substr(0, colon));
  if (kind.find("error") != std::string::npos || kind.find("fatal") != std::string::npos) return Level::Error;
  if (kind.find("warning") != std::string::npos) return Level::Warn;
  if (kind == "notice" || kind == "deprecated" || kind.find("strict") != std::string::npos) return Level::Info;
  return std::nullopt;
}

// The word after "level=", "lvl=", "severity=" (logfmt) or "level":"..." (JSON) anywhere.
std::optional<Level> keyed_level(std::string_view line) {
  static constexpr std::string_view kKeys[] = {"level=", "lvl=", "severity=", "\"level\":", "\"severity\":",
                                               "\"levelname\":"};
  for (auto key : kKeys) {
    for (size_t at = line.find(key); at != std::string_view::npos; at = line.find(key, at + 1)) {
      // A whole key: at the start, or after a space, '{' or ',' ("loglevel=" is not it).
      if (at > 0 && !is_space(line[at - 1]) && line[at - 1] != '{' && line[at - 1] != ',') continue;
      std::string_view v = line.substr(at + key.size());
      if (key.back() == ':') skip_spaces(v);
      if (!v.empty() && v.front() == '"') v.remove_prefix(1);
      size_t n = 0;
      while (n < v.size() && is_alpha(v[n])) ++n;
      if (n < v.size() && v[n] != '"' && !is_space(v[n]) && v[n] != ',' && v[n] != '}') continue;
      if (auto l = level_named(v.substr(0, n))) return l;
    }
  }
  return std::nullopt;
}

// Every space-separated word of `tag` is a word of `own`.
bool says_nothing_more(std::string_view tag, std::string_view own) {
  for (auto w : split(tag, ' ')) {
    if (w.empty()) continue;
    bool found = false;
    for (auto o : split(own, ' ')) found = found || o == w;
    if (!found) return false;
  }
  return true;
}

}  // namespace

std::optional<Level> app_line_level(std::string_view line) {
  std::string_view s = line;
  skip_spaces(s);
  // Up to four leading fields: bracketed ones ("[...]", which may name the level) and
  // timestamp words.
  for (int i = 0; i < 4 && !s.empty(); ++i) {
    if (s.front() == '[') {
      const auto end = s.find(']');
      if (end == std::string_view::npos || end > 64) break;
      if (auto l = bracket_level(s.substr(1, end - 1))) return l;
      s.remove_prefix(end + 1);
      skip_spaces(s);
      continue;
    }
    size_t n = 0;
    while (n < s.size() && !is_space(s[n])) ++n;
    if (!is_time_word(s.substr(0, n))) break;
    s.remove_prefix(n);
    skip_spaces(s);
  }
  if (auto l = php_level(s)) return l;
  // A leading level word, then ':' (any case), or a space or the end (upper case only).
  size_t n = 0;
  while (n < s.size() && is_alpha(s[n])) ++n;
  if (n > 0) {
    const std::string_view w = s.substr(0, n);
    const char next = n < s.size() ? s[n] : '\0';
    if (next == ':') {
      if (auto l = level_named(w)) return l;
    } else if ((next == '\0' || is_space(next) || next == '|') && all_upper(w)) {
      if (auto l = leading_level(w)) return l;
    }
  }
  return keyed_level(line);
}

OutputLine classify_output_line(std::string_view line, std::string_view tag, Level plain) {
  log::ParsedLine p;
  if (log::parse_line(line, p)) {
    OutputLine out{p.level, p.message};
    // Keep a tag that tells more than the supervisor's own ("[check] ...").
    if (!p.tag.empty() && !says_nothing_more(p.tag, tag)) {
      const char* start = p.tag.data() - 1;  // the '['
      out.text = std::string_view(start, static_cast<size_t>(line.data() + line.size() - start));
    }
    return out;
  }
  if (auto l = app_line_level(line)) return {*l, line};
  return {plain, line};
}

}  // namespace corral::supervisor
