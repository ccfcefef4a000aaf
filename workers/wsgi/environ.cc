#include "workers/wsgi/environ.h"

#include <algorithm>

#include "common/base/strings.h"

namespace corral::worker::wsgi {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "HTTP_" + upper-case name with '-' → '_'.
std::string cgi_name(std::string_view header) {
  std::string out = "HTTP_";
  out.reserve(5 + header.size());
  for (char c : header) {
    if (c == '-') out.push_back('_');
    else if (c >= 'a' && c <= 'z') out.push_back(static_cast<char>(c - 'a' + 'A'));
    else out.push_back(c);
  }
  return out;
}

// Splits "host:port" / "[v6]:port" / "host".
void split_host(std::string_view host, std::string_view& name, std::string_view& port) {
  port = {};
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) {
      name = host;
      return;
    }
    name = host.substr(0, close + 1);
    if (close + 1 < host.size() && host[close + 1] == ':') port = host.substr(close + 2);
    return;
  }
  auto colon = host.rfind(':');
  if (colon == std::string_view::npos) {
    name = host;
    return;
  }
  name = host.substr(0, colon);
  port = host.substr(colon + 1);
}

}  // namespace

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

CgiEnviron build_cgi_environ(const http1::RequestHead& head, size_t body_size, bool has_body,
                             const EnvironSettings& settings) {
  CgiEnviron env;
  auto& v = env.vars;
  v.reserve(head.headers.size() + 16);

  // Target: origin-form "/p?q"; absolute-form "http://a/p?q" (the path part); "*".
  std::string_view target = head.target;
  std::string_view path = target, query;
  if (!head.authority.empty() && target.front() != '/') {
    auto scheme_end = target.find("://");
    auto slash = scheme_end == std::string_view::npos ? std::string_view::npos : target.find('/', scheme_end + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (auto q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  if (auto hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  std::string path_info = path == "*" ? std::string() : percent_decode(path);
  std::string script_name = settings.script_name;
  if (!script_name.empty()) {
    // Strip the mount point when the path is below it ("/app" matches "/app" and "/app/x").
    if (path_info.compare(0, script_name.size(), script_name) == 0 &&
        (path_info.size() == script_name.size() || path_info[script_name.size()] == '/'))
      path_info.erase(0, script_name.size());
  }

  v.emplace_back("REQUEST_METHOD", std::string(head.method));
  v.emplace_back("SCRIPT_NAME", std::move(script_name));
  v.emplace_back("PATH_INFO", std::move(path_info));
  v.emplace_back("QUERY_STRING", std::string(query));
  v.emplace_back("RAW_URI", std::string(target));
  v.emplace_back("REQUEST_URI", std::string(target));
  v.emplace_back("SERVER_PROTOCOL", head.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1");
  v.emplace_back("SERVER_SOFTWARE", settings.server_software);
  v.emplace_back("GATEWAY_INTERFACE", "CGI/1.1");
  if (has_body || body_size > 0) v.emplace_back("CONTENT_LENGTH", std::to_string(body_size));

  std::string_view forwarded_port, remote_addr, remote_port, real_ip;
  // Headers, in order; repeated names are joined. The forwarding headers the proxy set are
  // also visible as HTTP_X_FORWARDED_* (gunicorn does the same).
  std::vector<std::pair<std::string, std::string>> http;
  for (const auto& h : head.headers) {
    if (h.name.find('_') != std::string_view::npos) continue;
    if (iequals(h.name, "content-length")) continue;  // the body's real size is CONTENT_LENGTH
    if (iequals(h.name, "content-type")) {
      v.emplace_back("CONTENT_TYPE", std::string(h.value));
      continue;
    }
    if (iequals(h.name, "x-forwarded-proto")) env.url_scheme = iequals(trim(h.value), "https") ? "https" : "http";
    else if (iequals(h.name, "x-forwarded-port")) forwarded_port = trim(h.value);
    else if (iequals(h.name, "x-remote-port")) remote_port = trim(h.value);
    else if (iequals(h.name, "x-real-ip")) real_ip = trim(h.value);
    else if (iequals(h.name, "x-forwarded-for")) {
      std::string_view xff = h.value;
      if (auto comma = xff.rfind(','); comma != std::string_view::npos) xff = xff.substr(comma + 1);
      remote_addr = trim(xff);
    }
    std::string name = cgi_name(h.name);
    auto it = std::find_if(http.begin(), http.end(), [&](auto& kv) { return kv.first == name; });
    if (it == http.end()) {
      http.emplace_back(std::move(name), std::string(h.value));
    } else {
      it->second.append(iequals(h.name, "cookie") ? "; " : ", ");
      it->second.append(h.value);
    }
  }
  for (auto& kv : http) v.push_back(std::move(kv));

  std::string_view host_name, host_port;
  split_host(head.host, host_name, host_port);
  v.emplace_back("SERVER_NAME", host_name.empty() ? std::string("localhost") : std::string(host_name));
  std::string port(!forwarded_port.empty() ? forwarded_port : host_port);
  if (port.empty()) port = env.url_scheme == "https" ? "443" : "80";
  v.emplace_back("SERVER_PORT", std::move(port));
  // X-Real-IP: the client a trusted proxy's X-Forwarded-For chain names (the proxy sends it
  // only then); otherwise the proxy's X-Forwarded-For is the one address it saw.
  if (!real_ip.empty()) remote_addr = real_ip;
  if (!remote_addr.empty()) v.emplace_back("REMOTE_ADDR", std::string(remote_addr));
  if (!remote_port.empty()) v.emplace_back("REMOTE_PORT", std::string(remote_port));
  return env;
}

}  // namespace corral::worker::wsgi
