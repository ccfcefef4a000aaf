#include "proxy/router.h"

#include "common/base/strings.h"

namespace corral::proxy {

std::string_view strip_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool path_prefix_match(std::string_view prefix, std::string_view path) {
  if (prefix.empty() || prefix == "/") return true;
  if (prefix.back() == '/') return path.substr(0, prefix.size()) == prefix;
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  if (path.size() == prefix.size()) return true;
  char next = path[prefix.size()];
  return next == '/' || next == '?' || next == '#';
}

void Router::add(std::string_view host, std::string_view path, int app) {
  Entry e;
  e.host = to_lower(strip_port(host));
  e.path = std::string(path.empty() ? "/" : path);
  e.app = app;
  entries_.push_back(std::move(e));
}

int Router::match(std::string_view host, std::string_view target) const {
  std::string_view prefix;
  return match(host, target, prefix);
}

int Router::match(std::string_view host, std::string_view target, std::string_view& prefix) const {
  const Entry* e = find(host, target);
  if (!e) return -1;
  prefix = e->path;
  return e->app;
}

const Router::Entry* Router::find(std::string_view host, std::string_view target) const {
  // An absolute-form target ("http://h/p") routes by its path; the parser already took the
  // authority as the host.
  if (!target.empty() && target.front() != '/') {
    size_t scheme = target.find("://");
    if (scheme != std::string_view::npos) {
      size_t slash = target.find('/', scheme + 3);
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  std::string_view h = strip_port(host);
  for (const auto& e : entries_) {
    if (e.app < 0 && !e.static_site) continue;
    if (!e.host.empty() && !iequals(e.host, h)) continue;
    if (!path_prefix_match(e.path, target)) continue;
    return &e;
  }
  return nullptr;
}

}  // namespace corral::proxy
