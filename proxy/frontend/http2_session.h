#pragma once
// The HTTP/2 server side of a connection (nghttp2 server session).
#include <memory>

#include "proxy/client_connection.h"

namespace corral::proxy {

/// The HTTP/2 session for a connection whose protocol is h2 (ALPN or prior knowledge).
std::unique_ptr<FrontendSession> make_http2_session(ClientConnection& conn);

}  // namespace corral::proxy
