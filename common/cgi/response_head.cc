#include "common/cgi/response_head.h"

#include "common/base/strings.h"
#include "common/http1/parser.h"

namespace corral::cgi {
namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}

bool dropped(std::string_view name) {
  for (std::string_view n : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                             "upgrade"})
    if (iequals(name, n)) return true;
  return false;
}

}  // namespace

ResponseHeadParser::Status ResponseHeadParser::parse(std::string_view buf, ResponseHead& out) {
  // Find the empty line: LF LF, or LF CR LF (lines may end in LF or CRLF).
  if (!buf.empty() && (buf[0] == '\n' || (buf.size() >= 2 && buf[0] == '\r' && buf[1] == '\n')))
    return fail("empty CGI header block");
  size_t end = std::string_view::npos, body = 0;
  for (size_t i = scanned_; i < buf.size(); ++i) {
    if (buf[i] != '\n') continue;
    size_t next = i + 1;
    if (next < buf.size() && buf[next] == '\n') {
      end = i + 1;
      body = next + 1;
      break;
    }
    if (next + 1 < buf.size() && buf[next] == '\r' && buf[next + 1] == '\n') {
      end = i + 1;
      body = next + 2;
      break;
    }
  }
  if (end == std::string_view::npos) {
    if (buf.size() > kMaxHeadSize) return fail("CGI header block too large");
    // A terminator is at most 3 bytes: resume just before the last two.
    scanned_ = buf.size() >= 2 ? buf.size() - 2 : 0;
    return Status::Incomplete;
  }
  if (body > kMaxHeadSize) return fail("CGI header block too large");

  out = ResponseHead{};
  bool have_status = false;
  size_t lines = 0;
  std::string_view head = buf.substr(0, end);
  while (!head.empty()) {
    if (++lines > kMaxFields) return fail("too many CGI header lines");
    size_t lf = head.find('\n');
    std::string_view line = head.substr(0, lf);
    head.remove_prefix(lf + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return fail("CGI header line without a name");
    std::string_view name = line.substr(0, colon);
    // The proxy reads worker responses with common/http1, which refuses longer names.
    if (name.size() > http1::kMaxFieldNameSize) return fail("CGI header name too long");
    for (char c : name)
      if (!is_tchar(c)) return fail("invalid CGI header name");
    std::string_view value = trim_ows(line.substr(colon + 1));
    for (char c : value)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return fail("control character in a CGI header");
    if (iequals(name, "status")) {
      if (have_status) return fail("repeated CGI Status");
      if (value.size() < 3) return fail("invalid CGI Status");
      int code = 0;
      for (size_t i = 0; i < 3; ++i) {
        if (value[i] < '0' || value[i] > '9') return fail("invalid CGI Status");
        code = code * 10 + (value[i] - '0');
      }
      if (code < 200 || code > 599 || (value.size() > 3 && value[3] != ' ' && value[3] != '\t'))
        return fail("invalid CGI Status");
      out.status = code;
      out.reason = std::string(trim_ows(value.substr(3)));
      have_status = true;
    } else if (iequals(name, "content-length")) {
      auto n = parse_decimal(value);
      if (!n || (out.content_length && *out.content_length != *n)) return fail("invalid CGI Content-Length");
      out.content_length = *n;
    } else if (dropped(name)) {
      continue;
    } else {
      if (iequals(name, "location")) {
        if (value.empty()) return fail("empty CGI Location");
        out.location = std::string(value);
      }
      out.headers.emplace_back(std::string(name), std::string(value));
    }
  }
  if (!out.location.empty()) {
    if (out.location.front() == '/' && (out.location.size() < 2 || out.location[1] != '/') && !have_status) {
      out.kind = ResponseKind::LocalRedirect;
    } else {
      out.kind = ResponseKind::ClientRedirect;
      if (!have_status) out.status = 302;
    }
  }
  consumed_ = body;
  return Status::Done;
}

}  // namespace corral::cgi
