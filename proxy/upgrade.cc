#include "proxy/upgrade.h"

#include <sys/random.h>

#include <cstdint>
#include <cstring>

#include "common/base/strings.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy {

bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view t = trim_ows(value.substr(0, comma));
    // "websocket/13": a protocol with its version is still that protocol.
    if (size_t slash = t.find('/'); slash != std::string_view::npos) t = t.substr(0, slash);
    if (iequals(t, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view field_value(const std::vector<http1::Header>& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

std::string_view forwarded_upgrade(const http1::RequestHead& req, conf::AppKind kind) {
  if (kind != conf::AppKind::Http || req.version_minor < 1 || req.body != http1::BodyKind::None) return {};
  std::string_view upgrade;
  int fields = 0;
  for (const auto& h : req.headers)
    if (iequals(h.name, "upgrade") && fields++ == 0) upgrade = h.value;
  if (fields != 1 || upgrade.empty()) return {};
  if (!connection_tokens(req.headers).contains("upgrade")) return {};
  if (has_token(upgrade, "h2c")) return {};
  return upgrade;
}

void append_upgrade_fields(std::string& out, std::string_view protocol) {
  out.append("Upgrade: ");
  out.append(protocol);
  out.append("\r\nConnection: upgrade\r\n");
}

void append_switching_head(const http1::ResponseHead& resp, std::string& out) {
  append_response_head(resp, ClientFraming::None, 1, true, out);
  out.resize(out.size() - 2);  // reopen the head: the hop-by-hop fields of the switch go last
  std::string_view upgrade = field_value(resp.headers, "upgrade");
  append_upgrade_fields(out, upgrade.empty() ? std::string_view("websocket") : upgrade);
  out.append("\r\n", 2);
}

std::string_view websocket_key(std::array<char, kWebSocketKeySize>& buf) {
  uint8_t raw[16];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < 15; i += 3) {
    uint32_t v = uint32_t(raw[i]) << 16 | uint32_t(raw[i + 1]) << 8 | raw[i + 2];
    buf[o++] = kB64[v >> 18 & 63];
    buf[o++] = kB64[v >> 12 & 63];
    buf[o++] = kB64[v >> 6 & 63];
    buf[o++] = kB64[v & 63];
  }
  uint32_t v = uint32_t(raw[15]) << 16;
  buf[o++] = kB64[v >> 18 & 63];
  buf[o++] = kB64[v >> 12 & 63];
  buf[o++] = '=';
  buf[o++] = '=';
  return std::string_view(buf.data(), o);
}

}  // namespace corral::proxy
