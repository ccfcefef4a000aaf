#pragma once
// The CGI part of a WSGI environ (PEP 3333 "environ Variables"), built from the request the
// proxy forwarded. Pure C++ (no Python), so it is unit-tested on its own; wsgi_call turns it
// into the environ dict (every value a latin-1 str, as PEP 3333 wants "native strings").
//
// What comes from where (the proxy is trusted: it replaces the forwarding headers a client
// sends, see proxy/forwarding_headers.h):
//   REMOTE_ADDR / REMOTE_PORT   X-Real-IP (sent for a trusted proxy's chain), else the last
//                               X-Forwarded-For address / X-Remote-Port
//   wsgi.url_scheme             X-Forwarded-Proto ("https" or "http")
//   SERVER_NAME / SERVER_PORT   the Host header; the port from X-Forwarded-Port, else Host's,
//                               else 80/443 by scheme
//   SCRIPT_NAME                 the app's SCRIPT_NAME env variable (as gunicorn); PATH_INFO is
//                               the percent-decoded path with that prefix removed
//   HTTP_*                      every other header; names with '_' are dropped (they would be
//                               indistinguishable from '-' ones: the nginx/gunicorn rule);
//                               repeated fields are joined with ", " (Cookie with "; ")
// Thread-safe (no state).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http1/parser.h"

namespace corral::worker::wsgi {

struct EnvironSettings {
  std::string script_name;      ///< mount point without a trailing '/', "" = root
  std::string server_software;  ///< SERVER_SOFTWARE
};

struct CgiEnviron {
  std::vector<std::pair<std::string, std::string>> vars;  ///< bytes; the order is not meaningful
  std::string url_scheme = "http";
};

/// Builds the CGI variables of `head` (a request whose body has `body_size` bytes;
/// `has_body` = it carried framing at all).
CgiEnviron build_cgi_environ(const http1::RequestHead& head, size_t body_size, bool has_body,
                             const EnvironSettings& settings);

/// Percent-decodes `s` ("%2F" → "/"); malformed escapes stay as written (as gunicorn and
/// werkzeug do).
std::string percent_decode(std::string_view s);

}  // namespace corral::worker::wsgi
