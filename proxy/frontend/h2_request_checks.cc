#include "proxy/frontend/h2_request_checks.h"

#include <algorithm>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "common/http1/request_checks.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy::h2 {
namespace {

HeadCheck malformed(const char* why) { return {HeadVerdict::Malformed, why, 0}; }
HeadCheck answer(int status, const char* why = "") { return {HeadVerdict::Answer, why, status}; }

// What the proxy answers itself (proxy/forwarding_headers.h local_answer), else Ok.
HeadCheck answer_locally(const RequestFields& f) {
  LocalAnswer a = local_answer(f.method, f.path, {f.max_forwards, f.max_forwards_count});
  return a.status ? answer(a.status, a.reason) : HeadCheck{};
}

}  // namespace

HeadCheck check_request_head(const RequestFields& f) {
  // nghttp2 has checked presence, order and repetition of the pseudo-header fields and the
  // characters of :method, :path, :authority and Host; these are the rules an HTTP/1.1
  // request line and Host field add (RFC 9113 §8.3.1: the target URI must be valid).
  if (f.method.empty()) return malformed("missing :method");
  if (!http1::valid_method(f.method)) return malformed("invalid :method");
  // A token, but longer than any method a server implements (RFC 9112 §3, as for HTTP/1.1).
  if (f.method.size() > http1::kMaxMethodSize) return answer(501, "method too long");
  if (!f.authority.empty() && f.authority.find('@') != std::string_view::npos)
    return malformed(":authority with userinfo");  // §8.3.1: MUST NOT include userinfo
  if (!f.authority.empty() && !http1::valid_host(f.authority)) return malformed("invalid :authority");
  if (!f.host.empty() && !http1::valid_host(f.host)) return malformed("invalid host");
  // §8.3.1: a Host identifying another entity than :authority is malformed (request routing
  // must not depend on which of the two a component reads).
  if (!f.authority.empty() && !f.host.empty() && !iequals(f.authority, f.host))
    return malformed(":authority and host disagree");
  if (f.method == "CONNECT" && f.protocol.empty()) {
    // §8.5: only :method and :authority (host and port); nghttp2 rejects :scheme and :path.
    if (!f.scheme.empty() || !f.path.empty()) return malformed("CONNECT with :scheme or :path");
    if (f.authority.empty() || f.authority.rfind(':') == std::string_view::npos ||
        f.authority.back() == ']' || f.authority.back() == ':')
      return malformed("CONNECT without host and port");
    return answer_locally(f);
  }
  if (!f.protocol.empty() && f.method != "CONNECT") return malformed(":protocol on a method other than CONNECT");
  if (f.authority.empty() && f.host.empty()) return malformed("missing :authority and host");
  if (f.scheme.empty()) return malformed("missing :scheme");
  // The worker hears about TLS from X-Forwarded-Proto; another scheme has no meaning here.
  if (!iequals(f.scheme, "http") && !iequals(f.scheme, "https")) return malformed(":scheme is not http or https");
  if (f.path.empty()) return malformed("empty :path");  // §8.3.1
  if (f.path == "*") {
    if (f.method != "OPTIONS" || !f.protocol.empty()) return malformed(":path * on a method other than OPTIONS");
  } else {
    if (f.path[0] != '/') return malformed(":path is not an absolute path");
    if (!http1::valid_origin_form(f.path)) return malformed("invalid character in :path");
  }
  // An extended CONNECT (RFC 8441) is a WebSocket for an app, not the proxy's to answer.
  if (!f.protocol.empty()) return {};
  return answer_locally(f);
}

bool StreamIds::on_headers(int32_t id, bool known) {
  if (id > max_id_) {
    max_id_ = id;  // a new stream (nghttp2 checks parity and the concurrency limit)
    return true;
  }
  if (known) return true;
  return std::find(reset_.begin(), reset_.end(), id) != reset_.end();
}

void StreamIds::on_reset_sent(int32_t id) {
  reset_[next_reset_] = id;
  next_reset_ = (next_reset_ + 1) % kRecentResets;
}

}  // namespace corral::proxy::h2
