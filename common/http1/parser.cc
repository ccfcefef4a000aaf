#include "common/http1/parser.h"

#include <cstring>

#include "common/base/strings.h"
#include "common/http1/chars.h"
#include "common/http1/head_scan.h"
#include "common/http1/request_checks.h"

namespace corral::http1 {
namespace {

using detail::FieldFacts;
using detail::HeadScan;
using detail::ScanStatus;

HeadResult error_result(HeadScan& s, int status, const char* reason) {
  s.failed = true;
  s.error = ParseError{status, reason};
  return HeadResult{ParseStatus::Error, 0, s.error};
}

/// "HTTP/1.0" → 0, "HTTP/1.1" → 1; -1 for another well-formed version ("HTTP/2.0"), -2 for junk.
int parse_version(std::string_view v) {
  if (v.size() != 8 || std::memcmp(v.data(), "HTTP/", 5) != 0 || v[6] != '.') return -2;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return -2;
  if (v[5] == '1' && (v[7] == '0' || v[7] == '1')) return v[7] - '0';
  return -1;
}

/// Parses the header lines between the start line and the final CRLF into `headers`,
/// collecting framing facts. Returns a static reason (400-class) or nullptr; sets
/// `too_many` when the count limit is passed or a field name is over kMaxFieldNameSize (431).
const char* parse_fields(std::string_view block, const Limits& limits, std::vector<Header>& headers,
                         FieldFacts& facts, bool& too_many) {
  headers.clear();
  // Every line in `block` ends in CRLF (guaranteed by scan_head).
  while (!block.empty()) {
    const char* lf = static_cast<const char*>(std::memchr(block.data(), '\n', block.size()));
    const size_t len = static_cast<size_t>(lf - block.data());
    std::string_view line = block.substr(0, len - 1);
    block.remove_prefix(len + 1);
    if (headers.size() == limits.max_header_count) {
      too_many = true;
      return "too many header fields";
    }
    Header h;
    if (const char* err = detail::parse_field_line(line, h)) return err;
    if (h.name.size() > kMaxFieldNameSize) {
      too_many = true;
      return "field name too long";
    }
    headers.push_back(h);
    if (const char* err = detail::apply_field(h, facts)) return err;
  }
  return nullptr;
}

/// Checks the request-target form for `method` and fills out.authority.
const char* check_target(std::string_view method, std::string_view target, RequestHead& out) {
  // RFC 9112 §3.2.3: CONNECT takes the authority-form and only it.
  if (method == "CONNECT") {
    if (!detail::valid_authority(target, false, true)) return "invalid authority-form target";
    out.authority = target;
    return nullptr;
  }
  if (target[0] == '/') return valid_origin_form(target) ? nullptr : "invalid character in request-target";
  if (target == "*") return method == "OPTIONS" ? nullptr : "asterisk-form target on a method other than OPTIONS";
  // absolute-form: scheme "://" authority [path-abempty] ["?" query]
  size_t colon = target.find(':');
  if (colon == std::string_view::npos || colon == 0) return "invalid request-target";
  std::string_view scheme = target.substr(0, colon);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return "unsupported scheme in request-target";
  if (target.substr(colon + 1, 2) != "//") return "invalid absolute-form target";
  std::string_view rest = target.substr(colon + 3);
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos) return "userinfo in request-target";
  if (!detail::valid_authority(authority, false, false)) return "invalid authority in request-target";
  if (end != std::string_view::npos && !detail::valid_path_query(rest.substr(end)))
    return "invalid character in request-target";
  out.authority = authority;
  return nullptr;
}

}  // namespace

RequestParser::RequestParser(Limits limits) : limits_(limits) {}

void RequestParser::reset() { scan_ = {}; }

HeadResult RequestParser::parse(std::string_view buf, RequestHead& out) {
  if (scan_.failed) return HeadResult{ParseStatus::Error, 0, scan_.error};
  if (scan_.head_end == 0) {
    ScanStatus st = detail::scan_head(scan_, buf, limits_, true);
    if (st == ScanStatus::Incomplete) return HeadResult{};
    if (st == ScanStatus::Error) return HeadResult{ParseStatus::Error, 0, scan_.error};
  }

  // Request line: method SP request-target SP HTTP-version, single spaces only.
  std::string_view line = buf.substr(scan_.start, scan_.first_line_end - 2 - scan_.start);
  const size_t i = line.find(' ');
  if (i == std::string_view::npos || !valid_method(line.substr(0, i))) return error_result(scan_, 400, "invalid method");
  // RFC 9112 §3: a method longer than any a server implements gets 501. No registered
  // method comes near the bound; a longer token is not forwarded to an app.
  if (i > kMaxMethodSize) return error_result(scan_, 501, "method too long");
  out.method = line.substr(0, i);
  size_t t = i + 1;
  size_t sp = line.find(' ', t);
  if (sp == std::string_view::npos || sp == t) return error_result(scan_, 400, "invalid request line");
  out.target = line.substr(t, sp - t);
  const int minor = parse_version(line.substr(sp + 1));
  if (minor == -1) return error_result(scan_, 505, "HTTP version not supported");
  if (minor < 0) return error_result(scan_, 400, "invalid HTTP version");
  out.version_minor = minor;
  out.authority = {};
  if (const char* err = check_target(out.method, out.target, out)) return error_result(scan_, 400, err);

  FieldFacts f;
  bool too_many = false;
  std::string_view block = buf.substr(scan_.first_line_end, scan_.head_end - 2 - scan_.first_line_end);
  if (const char* err = parse_fields(block, limits_, out.headers, f, too_many))
    return error_result(scan_, too_many ? 431 : 400, err);

  if (minor == 1 && f.host_count != 1)
    return error_result(scan_, 400, f.host_count == 0 ? "missing Host" : "several Host fields");
  if (f.host_count > 1) return error_result(scan_, 400, "several Host fields");
  if (!out.authority.empty() && out.method != "CONNECT") {
    // RFC 9112 §3.2.2: with an absolute-form target the Host field (still required, and
    // still checked above) is ignored: the target's authority is the host, for routing and
    // for the Host the proxy forwards.
    out.host = out.authority;
  } else {
    out.host = f.host;
  }

  out.body = BodyKind::None;
  out.content_length = 0;
  if (f.has_transfer_encoding) {
    if (minor == 0) return error_result(scan_, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (f.has_content_length) return error_result(scan_, 400, "both Content-Length and Transfer-Encoding");
    if (!f.te_chunked_final) return error_result(scan_, 400, "chunked is not the final transfer coding");
    if (f.te_unknown) return error_result(scan_, 501, "unsupported transfer coding");
    out.body = BodyKind::Chunked;
  } else if (f.has_content_length) {
    out.body = BodyKind::ContentLength;
    out.content_length = f.content_length;
  }
  // RFC 9110 §10.1.1: an HTTP/1.0 client's expectations are ignored (it cannot have
  // meant them: Expect is HTTP/1.1).
  if (f.expect_other && minor == 1) return error_result(scan_, 417, "unsupported expectation");
  out.expect_continue = f.expect_continue && minor == 1;
  out.upgrade = f.upgrade_count == 1 && f.conn_upgrade ? f.upgrade : std::string_view();
  out.keep_alive = !f.conn_close && (minor == 1 || f.conn_keep_alive);
  return HeadResult{ParseStatus::Done, scan_.head_end, {}};
}

ResponseParser::ResponseParser(Limits limits) : limits_(limits) {}

void ResponseParser::reset() { scan_ = {}; }

HeadResult ResponseParser::parse(std::string_view buf, std::string_view request_method, ResponseHead& out) {
  if (scan_.failed) return HeadResult{ParseStatus::Error, 0, scan_.error};
  if (scan_.head_end == 0) {
    ScanStatus st = detail::scan_head(scan_, buf, limits_, false);
    if (st == ScanStatus::Incomplete) return HeadResult{};
    if (st == ScanStatus::Error) return HeadResult{ParseStatus::Error, 0, scan_.error};
  }

  // Status line: HTTP-version SP 3DIGIT SP reason-phrase (the second SP is required).
  std::string_view line = buf.substr(scan_.start, scan_.first_line_end - 2 - scan_.start);
  if (line.size() < 13 || line[8] != ' ' || line[12] != ' ') return error_result(scan_, 502, "invalid status line");
  const int minor = parse_version(line.substr(0, 8));
  if (minor < 0) return error_result(scan_, 502, "unsupported HTTP version in response");
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return error_result(scan_, 502, "invalid status code");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100) return error_result(scan_, 502, "invalid status code");
  std::string_view reason = line.substr(13);
  for (char c : reason)
    if (!chars::is_field_value(c)) return error_result(scan_, 502, "invalid character in reason phrase");
  out.status = status;
  out.reason = reason;
  out.version_minor = minor;

  FieldFacts f;
  bool too_many = false;
  std::string_view block = buf.substr(scan_.first_line_end, scan_.head_end - 2 - scan_.first_line_end);
  if (const char* err = parse_fields(block, limits_, out.headers, f, too_many)) return error_result(scan_, 502, err);

  const bool informational = status < 200;
  if ((informational || status == 204) && (f.has_content_length || f.has_transfer_encoding))
    return error_result(scan_, 502, "framing field in a 1xx or 204 response");
  if (f.has_transfer_encoding) {
    if (minor == 0) return error_result(scan_, 502, "Transfer-Encoding in an HTTP/1.0 response");
    if (f.has_content_length) return error_result(scan_, 502, "both Content-Length and Transfer-Encoding");
    if (!f.te_chunked_final || f.te_unknown) return error_result(scan_, 502, "unsupported transfer coding");
  }
  out.keep_alive = !f.conn_close && (minor == 1 || f.conn_keep_alive);
  out.content_length = 0;
  out.has_content_length = f.has_content_length;
  const bool connect_ok = request_method == "CONNECT" && status >= 200 && status < 300;
  if (informational || status == 204 || status == 304 || request_method == "HEAD" || connect_ok) {
    out.body = BodyKind::None;
    // A HEAD/304 response may announce the length of the body it does not carry.
    out.content_length = f.has_content_length ? f.content_length : 0;
  } else if (f.has_transfer_encoding) {
    out.body = BodyKind::Chunked;
  } else if (f.has_content_length) {
    out.body = BodyKind::ContentLength;
    out.content_length = f.content_length;
  } else {
    out.body = BodyKind::UntilClose;
    out.keep_alive = false;
  }
  return HeadResult{ParseStatus::Done, scan_.head_end, {}};
}

}  // namespace corral::http1
