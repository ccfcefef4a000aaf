#pragma once
// The CGI meta-variables of a request (RFC 3875 §4.1), shared by corral-worker (the
// environment of a CGI program) and the proxy's FastCGI client (PARAMS). Thread-safe.
//
// Request headers become HTTP_<NAME> ('-' → '_', upper case) except: names containing '_'
// (dropped, so that "X-A_B" and "X-A-B" can never both claim HTTP_X_A_B), `Proxy`
// (httpoxy, CVE-2016-5385: HTTP_PROXY would be read as the outgoing proxy), Content-Type and
// Content-Length (they are CONTENT_TYPE/CONTENT_LENGTH), and whatever the caller filters
// out beforehand. Repeated headers are joined with ", " ("; " for Cookie).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cgi/script_path.h"
#include "common/http1/parser.h"

namespace corral::cgi {

using Variables = std::vector<std::pair<std::string, std::string>>;

/// Facts about the connection that the request head does not carry.
struct RequestContext {
  std::string_view remote_addr;  ///< the real client's address ("" → "127.0.0.1")
  std::string_view remote_port;  ///< its source port; "" = unset
  std::string_view server_port;  ///< the port the client connected to; "" = from Host, else 80/443
  bool https = false;            ///< the client used TLS (HTTPS=on, REQUEST_SCHEME=https)
  std::string_view server_software;
  std::string_view document_root;  ///< DOCUMENT_ROOT and the base of PATH_TRANSLATED; "" = unset
};

/// True when a header of this name must not become an HTTP_* variable (see above).
bool excluded_header(std::string_view name);

/// Builds every meta-variable for `req` (whose headers were already filtered by the caller)
/// and `script`, then adds `extra` (the app's env) for names not set yet. `body_length` is
/// CONTENT_LENGTH when `has_body`. The result is sorted by name (stable for tests).
Variables meta_variables(const http1::RequestHead& req, const Script& script, const RequestContext& ctx,
                         bool has_body, uint64_t body_length,
                         std::span<const std::pair<std::string, std::string>> extra = {});

}  // namespace corral::cgi
