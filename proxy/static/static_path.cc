#include "proxy/static/static_path.h"

namespace corral::proxy::statics {
namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// A byte that must never come out of decoding, even of a second round: it would separate
/// segments, form a dot segment or end the name.
bool dangerous_decoded(int c) { return c == '/' || c == '\\' || c == '.' || c == '%' || c == 0; }

constexpr size_t kMaxPath = 4096;

}  // namespace

bool map_static_path(std::string_view target, std::string_view prefix, StaticPath& out) {
  out.rel.clear();
  out.slash = false;
  out.path = {};
  out.query = {};
  // An absolute-form target ("http://h/p") maps by its path, as the router does.
  if (!target.empty() && target.front() != '/') {
    size_t scheme = target.find("://");
    if (scheme == std::string_view::npos) return false;  // "*", authority-form
    size_t slash = target.find('/', scheme + 3);
    if (slash == std::string_view::npos) return false;
    target = target.substr(slash);
  }
  size_t q = target.find_first_of("?#");
  std::string_view path = target.substr(0, q);
  if (q != std::string_view::npos && target[q] == '?') out.query = target.substr(q);
  out.path = path;
  if (path.size() > kMaxPath) return false;
  // The router matched the prefix on a segment boundary; strip it (keep the '/' after it).
  std::string_view p = prefix.empty() ? std::string_view("/") : prefix;
  if (p.back() == '/') p.remove_suffix(1);
  if (path.substr(0, p.size()) != p) return false;
  std::string_view rest = path.substr(p.size());
  if (!rest.empty() && rest.front() != '/') return false;
  out.slash = !rest.empty() && rest.back() == '/';

  // Decode once, segment by segment.
  std::string& rel = out.rel;
  size_t seg_start = 0;  // in rel
  auto end_segment = [&]() -> bool {
    std::string_view seg(rel.data() + seg_start, rel.size() - seg_start);
    if (seg.empty()) return true;  // "//" merged (nothing was appended)
    if (seg.front() == '.' && seg != ".well-known") return false;  // ".", "..", hidden names
    rel.push_back('/');
    seg_start = rel.size();
    return true;
  };
  for (size_t i = 0; i < rest.size(); ++i) {
    char c = rest[i];
    if (c == '/') {
      if (!end_segment()) return false;
      continue;
    }
    if (c == '%') {
      if (i + 2 >= rest.size()) return false;  // truncated escape
      int hi = hex(rest[i + 1]), lo = hex(rest[i + 2]);
      if (hi < 0 || lo < 0) return false;  // malformed escape
      int d = hi * 16 + lo;
      if (d == '/' || d == '\\' || d == 0) return false;  // encoded separators, NUL
      c = static_cast<char>(d);
      i += 2;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return false;
    rel.push_back(c);
  }
  if (!end_segment()) return false;
  if (!rel.empty() && rel.back() == '/') rel.pop_back();
  // Double encoding: the decoded name must not hold an escape that a second round would turn
  // into a separator, a dot or NUL ("%252e" → "%2e", "%255c" → "%5c", "%2500" → "%00").
  for (size_t i = 0; i + 2 < rel.size(); ++i) {
    if (rel[i] != '%') continue;
    int hi = hex(rel[i + 1]), lo = hex(rel[i + 2]);
    if (hi >= 0 && lo >= 0 && dangerous_decoded(hi * 16 + lo)) return false;
  }
  return rel.size() <= kMaxPath;
}

}  // namespace corral::proxy::statics
