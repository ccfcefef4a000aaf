#pragma once
// Which client Upgrade requests go to a worker, and the head fields of a switch. Pure
// helpers; thread-safe.
//
// An HTTP/1.1 request is forwarded as an upgrade when it carries exactly one Upgrade field,
// lists "upgrade" in Connection, has no body and goes to an app of kind "http": the worker
// then gets `Upgrade: <the client's value>` and `Connection: upgrade` (any protocol token,
// as nginx passes $http_upgrade; never "h2c", which asks to speak HTTP/2 to the proxy's own
// peer and is stripped like every other hop-by-hop field). Anything else goes as a plain
// request with Upgrade and Connection removed (what nginx does without upgrade settings):
// HTTP/1.0, a body, several Upgrade fields, or an app of kind cgi, wsgi or fastcgi, which
// cannot switch protocols.
#include <array>
#include <string>
#include <string_view>

#include "common/http1/parser.h"
#include "conf/config.h"

namespace corral::proxy {

/// The Upgrade value to forward for `req` to an app of `kind`; empty: none (strip it).
std::string_view forwarded_upgrade(const http1::RequestHead& req, conf::AppKind kind);

/// The 101 head for an HTTP/1.1 client: the worker's status line and end-to-end fields,
/// then its Upgrade value and "Connection: upgrade".
void append_switching_head(const http1::ResponseHead& resp, std::string& out);

/// A fresh Sec-WebSocket-Key: 16 random bytes (getrandom), base64 (24 characters).
inline constexpr size_t kWebSocketKeySize = 24;
std::string_view websocket_key(std::array<char, kWebSocketKeySize>& buf);

}  // namespace corral::proxy
