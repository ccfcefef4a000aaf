#include "proxy/forwarding_headers.h"

#include <sys/random.h>

#include <charconv>

#include "common/base/strings.h"

namespace corral::proxy {
namespace {

bool is_framing(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding");
}

bool is_forwarding(std::string_view name) {
  return iequals(name, "x-forwarded-for") || iequals(name, "x-forwarded-proto") ||
         iequals(name, "x-forwarded-host") || iequals(name, "x-request-id") || iequals(name, "forwarded") ||
         iequals(name, "x-forwarded-port") || iequals(name, "x-forwarded-prefix") || iequals(name, "x-remote-port");
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

std::string_view reason_for(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

}  // namespace

bool ConnectionTokens::contains(std::string_view name) const {
  for (size_t i = 0; i < count; ++i)
    if (iequals(names[i], name)) return true;
  return false;
}

ConnectionTokens connection_tokens(const std::vector<http1::Header>& headers) {
  ConnectionTokens t;
  for (const auto& h : headers) {
    if (!iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty() && t.count < ConnectionTokens::kMax) {
      size_t comma = v.find(',');
      std::string_view tok = trim_ows(v.substr(0, comma));
      if (!tok.empty()) t.names[t.count++] = tok;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return t;
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
  }
}

void append_request_head(const http1::RequestHead& req, const Forwarding& fwd, std::string& out) {
  out.append(req.method);
  out.push_back(' ');
  out.append(req.target);
  out.append(" HTTP/1.1\r\n", 11);
  ConnectionTokens conn = connection_tokens(req.headers);
  bool have_host = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name) || is_framing(h.name) || is_forwarding(h.name)) continue;
    if (iequals(h.name, "expect")) continue;
    if (conn.count && conn.contains(h.name)) continue;
    if (iequals(h.name, "host")) have_host = true;
    append_header(out, h.name, h.value);
  }
  // HTTP/1.0 requests may lack Host; HTTP/1.1 to the worker requires one.
  if (!have_host) append_header(out, "Host", fwd.host.empty() ? std::string_view("localhost") : fwd.host);
  if (!fwd.client_ip.empty()) append_header(out, "X-Forwarded-For", fwd.client_ip);
  append_header(out, "X-Forwarded-Proto", fwd.proto);
  if (!fwd.host.empty()) append_header(out, "X-Forwarded-Host", fwd.host);
  if (!fwd.request_id.empty()) append_header(out, "X-Request-Id", fwd.request_id);
  if (fwd.server_port) {
    out.append("X-Forwarded-Port: ");
    append_decimal(out, fwd.server_port);
    out.append("\r\n", 2);
  }
  if (fwd.client_port) {
    out.append("X-Remote-Port: ");
    append_decimal(out, fwd.client_port);
    out.append("\r\n", 2);
  }
  if (!fwd.prefix.empty()) append_header(out, "X-Forwarded-Prefix", fwd.prefix);
}

void finish_request_head(std::string& out, uint64_t body_length, bool had_body) {
  if (had_body || body_length > 0) {
    out.append("Content-Length: ", 16);
    append_decimal(out, body_length);
    out.append("\r\n", 2);
  }
  out.append("\r\n", 2);
}

ClientFraming choose_framing(const http1::ResponseHead& resp, int client_minor, bool head_request) {
  if (head_request) {
    // The parser gives a HEAD response no body (BodyKind::None) but keeps the length the
    // worker announced: the GET's, passed through as is.
    bool length = resp.has_content_length || resp.body == http1::BodyKind::ContentLength;
    return length && resp.status != 204 && resp.status >= 200 ? ClientFraming::ContentLength : ClientFraming::None;
  }
  if (resp.status == 204 || resp.status == 304 || resp.status < 200) return ClientFraming::None;
  switch (resp.body) {
    case http1::BodyKind::None: return ClientFraming::Empty;
    case http1::BodyKind::ContentLength: return ClientFraming::ContentLength;
    case http1::BodyKind::Chunked:
    case http1::BodyKind::UntilClose:
      return client_minor >= 1 ? ClientFraming::Chunked : ClientFraming::UntilClose;
  }
  return ClientFraming::None;
}

void append_response_head(const http1::ResponseHead& resp, ClientFraming framing, int client_minor, bool keep_alive,
                          std::string& out) {
  out.append("HTTP/1.1 ", 9);
  append_decimal(out, static_cast<uint64_t>(resp.status));
  out.push_back(' ');
  out.append(resp.reason.empty() ? reason_for(resp.status) : resp.reason);
  out.append("\r\n", 2);
  ConnectionTokens conn = connection_tokens(resp.headers);
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || is_framing(h.name)) continue;
    if (conn.count && conn.contains(h.name)) continue;
    append_header(out, h.name, h.value);
  }
  switch (framing) {
    case ClientFraming::ContentLength:
      out.append("Content-Length: ", 16);
      append_decimal(out, resp.content_length);
      out.append("\r\n", 2);
      break;
    case ClientFraming::Chunked: out.append("Transfer-Encoding: chunked\r\n"); break;
    case ClientFraming::Empty: out.append("Content-Length: 0\r\n"); break;
    case ClientFraming::None:
    case ClientFraming::UntilClose: break;
  }
  if (!keep_alive || framing == ClientFraming::UntilClose)
    out.append("Connection: close\r\n");
  else if (client_minor == 0)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n", 2);
}

RequestIdGenerator::RequestIdGenerator() : prefix_(0) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this));
  prefix_ = r;
}

std::string_view RequestIdGenerator::next(std::array<char, kSize>& buf) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  for (int i = 7; i >= 0; --i) buf[static_cast<size_t>(7 - i)] = kHex[(prefix_ >> (i * 4)) & 0xf];
  buf[8] = '-';
  for (int i = 11; i >= 0; --i) buf[static_cast<size_t>(9 + 11 - i)] = kHex[(n >> (i * 4)) & 0xf];
  return std::string_view(buf.data(), kSize);
}

void append_decimal(std::string& out, uint64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  out.append(tmp, static_cast<size_t>(r.ptr - tmp));
}

}  // namespace corral::proxy
