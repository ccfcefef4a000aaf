#include "common/cgi/meta_variables.h"

#include <algorithm>
#include <map>

#include "common/base/strings.h"

namespace corral::cgi {
namespace {

// "Host: example.com:8080" → name "example.com", port "8080"; IPv6 literals keep brackets.
void split_host(std::string_view host, std::string_view& name, std::string_view& port) {
  name = host;
  port = {};
  size_t colon = host.rfind(':');
  if (colon == std::string_view::npos) return;
  if (host.front() == '[' && host.find(']') > colon) return;  // "[::1]" without a port
  name = host.substr(0, colon);
  port = host.substr(colon + 1);
}

}  // namespace

bool excluded_header(std::string_view name) {
  if (name.find('_') != std::string_view::npos) return true;
  return iequals(name, "proxy") || iequals(name, "content-type") || iequals(name, "content-length");
}

Variables meta_variables(const http1::RequestHead& req, const Script& script, const RequestContext& ctx,
                         bool has_body, uint64_t body_length,
                         std::span<const std::pair<std::string, std::string>> extra) {
  std::map<std::string, std::string> v;
  std::string name;
  std::string_view content_type;
  bool have_content_type = false;
  for (const http1::Header& h : req.headers) {
    if (iequals(h.name, "content-type") && !have_content_type) {
      content_type = h.value;
      have_content_type = true;
    }
    if (excluded_header(h.name)) continue;
    name.assign("HTTP_");
    for (char c : h.name) name.push_back(c == '-' ? '_' : (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
    auto [it, fresh] = v.try_emplace(name, h.value);
    if (!fresh) {
      it->second.append(name == "HTTP_COOKIE" ? "; " : ", ");
      it->second.append(h.value);
    }
  }
  TargetParts t = split_target(req.target);
  std::string_view host_name, host_port;
  split_host(req.host, host_name, host_port);

  v["GATEWAY_INTERFACE"] = "CGI/1.1";
  v["SERVER_SOFTWARE"] = std::string(ctx.server_software);
  v["SERVER_NAME"] = host_name.empty() ? std::string("localhost") : std::string(host_name);
  std::string_view port = !ctx.server_port.empty() ? ctx.server_port : host_port;
  v["SERVER_PORT"] = !port.empty() ? std::string(port) : std::string(ctx.https ? "443" : "80");
  v["SERVER_PROTOCOL"] = req.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  v["REQUEST_METHOD"] = std::string(req.method);
  v["REQUEST_URI"] = std::string(req.target);
  v["QUERY_STRING"] = std::string(t.query);
  v["SCRIPT_NAME"] = script.script_name;
  if (!script.filename.empty()) v["SCRIPT_FILENAME"] = script.filename;
  if (!script.path_info.empty()) {
    v["PATH_INFO"] = script.path_info;
    // RFC 3875 §4.1.6: unset when PATH_INFO is; otherwise the path_info mapped like a URL.
    if (!ctx.document_root.empty()) v["PATH_TRANSLATED"] = std::string(ctx.document_root) + script.path_info;
  }
  if (!ctx.document_root.empty()) v["DOCUMENT_ROOT"] = std::string(ctx.document_root);
  v["REMOTE_ADDR"] = ctx.remote_addr.empty() ? std::string("127.0.0.1") : std::string(ctx.remote_addr);
  if (!ctx.remote_port.empty()) v["REMOTE_PORT"] = std::string(ctx.remote_port);
  v["REQUEST_SCHEME"] = ctx.https ? "https" : "http";
  if (ctx.https) v["HTTPS"] = "on";
  if (has_body) v["CONTENT_LENGTH"] = std::to_string(body_length);
  if (have_content_type) v["CONTENT_TYPE"] = std::string(content_type);
  for (auto& [k, val] : extra) v.try_emplace(k, val);

  Variables out;
  out.reserve(v.size());
  for (auto& [k, val] : v) out.emplace_back(k, std::move(val));
  return out;
}

}  // namespace corral::cgi
