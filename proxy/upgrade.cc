#include "proxy/upgrade.h"

#include <sys/random.h>

#include <cstdint>
#include <cstring>

#include "common/base/strings.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy {

std::string_view forwarded_upgrade(const http1::RequestHead& req, conf::AppKind kind) {
  if (kind != conf::AppKind::Http || req.version_minor < 1 || req.body != http1::BodyKind::None) return {};
  // The parser found exactly one Upgrade field and "upgrade" in Connection.
  if (req.upgrade.empty() || list_contains(req.upgrade, "h2c", "/;")) return {};
  return req.upgrade;
}

void append_switching_head(const http1::ResponseHead& resp, std::string& out) {
  append_response_head(resp, ClientFraming::None, 1, true, out);
  out.resize(out.size() - 2);  // reopen the head: the hop-by-hop fields of the switch go last
  std::string_view upgrade = header_value(resp.headers, "upgrade");
  append_header(out, "Upgrade", upgrade.empty() ? std::string_view("websocket") : upgrade);
  append_header(out, "Connection", "upgrade");
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
