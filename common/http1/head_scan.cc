#include "common/http1/head_scan.h"

#include <cstring>

#include "common/base/strings.h"
#include "common/http1/chars.h"

namespace corral::http1::detail {
namespace {

ScanStatus fail(HeadScan& s, int status, const char* reason) {
  s.failed = true;
  s.error = ParseError{status, reason};
  return ScanStatus::Error;
}

}  // namespace

ScanStatus scan_head(HeadScan& s, std::string_view buf, const Limits& limits, bool is_request) {
  const char* p = buf.data();
  const size_t n = buf.size();
  const int bad = is_request ? 400 : 502;
  if (!s.started) {
    if (n == 0) return ScanStatus::Incomplete;
    // RFC 9112 §2.2 lets a server ignore at least one empty line before the request-line;
    // corral ignores exactly one (a client may send a CRLF after a POST body) and no more.
    if (is_request && p[0] == '\r') {
      if (n < 2) return ScanStatus::Incomplete;
      if (p[1] != '\n') return fail(s, bad, "bare CR before the start line");
      s.start = 2;
    } else if (p[0] == '\n') {
      return fail(s, bad, "bare LF before the start line");
    }
    s.started = true;
    s.pos = s.line_start = s.start;
  }
  while (true) {
    // A line that starts with CR must be the empty line that ends the head (CRLF CRLF);
    // check it as soon as its second byte arrives, so "CRLF CR X" fails without waiting.
    if (s.line_start + 1 < n && p[s.line_start] == '\r') {
      if (s.line_start == s.start)
        return fail(s, bad, p[s.line_start + 1] == '\n' ? "empty line before the start line"
                                                        : "bare CR at start of line");
      if (p[s.line_start + 1] != '\n') return fail(s, bad, "header block not ended by CRLF CRLF");
    }
    const void* hit = s.pos < n ? std::memchr(p + s.pos, '\n', n - s.pos) : nullptr;
    if (hit == nullptr) {
      s.pos = n;
      break;
    }
    const size_t i = static_cast<size_t>(static_cast<const char*>(hit) - p);
    if (i == s.line_start || p[i - 1] != '\r') return fail(s, bad, "bare LF");
    if (s.first_line_end == 0) {
      if (i - 1 == s.line_start) return fail(s, bad, "empty start line");
      s.first_line_end = i + 1;
      if (i + 1 > limits.max_head_size)
        return fail(s, is_request ? 414 : 502, is_request ? "request line too long" : "status line too long");
    } else if (i - 1 == s.line_start) {
      s.head_end = i + 1;
      if (s.head_end > limits.max_head_size)
        return fail(s, is_request ? 431 : 502, "header section too large");
      return ScanStatus::Done;
    }
    s.line_start = i + 1;
    s.pos = i + 1;
  }
  if (n > limits.max_head_size) {
    if (s.first_line_end == 0)
      return fail(s, is_request ? 414 : 502, is_request ? "request line too long" : "status line too long");
    return fail(s, is_request ? 431 : 502, "header section too large");
  }
  return ScanStatus::Incomplete;
}

const char* parse_field_line(std::string_view line, Header& out) {
  if (line.empty()) return "empty field line";
  if (line[0] == ' ' || line[0] == '\t') return "obsolete line folding";
  size_t i = 0;
  while (i < line.size() && chars::is_token(line[i])) ++i;
  if (i == line.size()) return "field line without colon";
  if (line[i] != ':') {
    if (line[i] == ' ' || line[i] == '\t') return "whitespace between field name and colon";
    return "invalid character in field name";
  }
  if (i == 0) return "empty field name";
  out.name = line.substr(0, i);
  std::string_view value = line.substr(i + 1);
  for (char c : value)
    if (!chars::is_field_value(c)) return "invalid character in field value";
  out.value = trim_ows(value);
  return nullptr;
}

namespace {

// One element of a Transfer-Encoding list, in order.
const char* apply_coding(std::string_view coding, FieldFacts& f) {
  coding = trim_ows(coding);
  if (coding.empty()) return "empty transfer coding";
  std::string_view name = coding;
  std::string_view params;
  if (size_t semi = coding.find(';'); semi != std::string_view::npos) {
    name = trim_ows(coding.substr(0, semi));
    params = coding.substr(semi);
  }
  if (name.empty()) return "empty transfer coding";
  for (char c : name)
    if (!chars::is_token(c)) return "invalid transfer coding";
  if (iequals(name, "chunked")) {
    if (!params.empty()) return "parameters on chunked";
    if (f.te_chunked_final) return "chunked applied twice";
    f.te_chunked_final = true;
    return nullptr;
  }
  // Any coding after chunked makes the length undeterminable (RFC 9112 §6.3).
  if (f.te_chunked_final) return "chunked is not the final transfer coding";
  f.te_unknown = true;
  return nullptr;
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

bool valid_pct_run(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return false;
      if (!chars::is_hex(s[i + 1]) || !chars::is_hex(s[i + 2])) return false;
      i += 2;
    }
  }
  return true;
}

bool valid_path_query(std::string_view s) {
  for (char c : s)
    if (!chars::is(c, chars::kTarget) || c == '[' || c == ']') return false;
  return valid_pct_run(s);
}

bool valid_authority(std::string_view a, bool allow_empty, bool require_port) {
  if (a.empty()) return allow_empty && !require_port;
  std::string_view host = a;
  std::string_view rest;
  if (a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : a.substr(1, close - 1))
      if (!(chars::is_hex(c) || c == ':' || c == '.' || c == 'v' || c == 'V')) return false;
    host = a.substr(0, close + 1);
    rest = a.substr(close + 1);
  } else {
    size_t colon = a.find(':');
    if (colon != std::string_view::npos) {
      host = a.substr(0, colon);
      rest = a.substr(colon);
    }
    if (host.empty()) return false;
    for (char c : host)
      if (!chars::is(c, chars::kHostChar) || c == '[' || c == ']' || c == ':') return false;
    if (!valid_pct_run(host)) return false;
  }
  if (rest.empty()) return !require_port;
  if (rest[0] != ':') return false;
  return valid_port(rest.substr(1));
}

const char* apply_field(const Header& h, FieldFacts& f) {
  const std::string_view n = h.name;
  switch (n.size()) {
    case 4:
      if (iequals(n, "host")) {
        ++f.host_count;
        f.host = h.value;
        if (!valid_authority(h.value, true, false)) return "invalid Host";
      }
      break;
    case 6:
      if (iequals(n, "expect")) {
        if (iequals(h.value, "100-continue"))
          f.expect_continue = true;
        else
          f.expect_other = true;
      }
      break;
    case 7:
      if (iequals(n, "upgrade") && f.upgrade_count++ == 0) f.upgrade = h.value;
      break;
    case 10:
      if (iequals(n, "connection")) {
        std::string_view v = h.value;
        while (true) {
          size_t comma = v.find(',');
          std::string_view tok = trim_ows(v.substr(0, comma));
          // Empty list elements are legal (RFC 9110 §5.6.1) and harmless here.
          for (char c : tok)
            if (!chars::is_token(c)) return "invalid Connection";
          if (iequals(tok, "close")) f.conn_close = true;
          if (iequals(tok, "keep-alive")) f.conn_keep_alive = true;
          if (iequals(tok, "upgrade")) f.conn_upgrade = true;
          if (comma == std::string_view::npos) break;
          v.remove_prefix(comma + 1);
        }
      }
      break;
    case 14:
      if (iequals(n, "content-length")) {
        auto len = parse_decimal(h.value);
        if (!len) return "invalid Content-Length";
        // Identical repeated fields are accepted (RFC 9110 §8.6 permits it); a list
        // ("5, 5") is rejected above as non-digits, and differing values here.
        if (f.has_content_length && *len != f.content_length) return "differing Content-Length values";
        f.has_content_length = true;
        f.content_length = *len;
      }
      break;
    case 17:
      if (iequals(n, "transfer-encoding")) {
        f.has_transfer_encoding = true;
        std::string_view v = h.value;
        while (true) {
          size_t comma = v.find(',');
          if (const char* err = apply_coding(v.substr(0, comma), f)) return err;
          if (comma == std::string_view::npos) break;
          v.remove_prefix(comma + 1);
        }
      }
      break;
    default:
      break;
  }
  return nullptr;
}

}  // namespace corral::http1::detail
