#include "common/http1/serializer.h"

#include <cassert>
#include <charconv>

#include "common/base/strings.h"

namespace corral::http1 {
namespace {

[[maybe_unused]] bool no_crlf(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

void append_uint(std::string& out, uint64_t v, int base) {
  char tmp[24];
  auto res = std::to_chars(tmp, tmp + sizeof tmp, v, base);
  out.append(tmp, static_cast<size_t>(res.ptr - tmp));
}

void append_fields(std::string& out, std::span<const Header> headers, BodyFraming framing) {
  for (const Header& h : headers) {
    assert(no_crlf(h.name) && no_crlf(h.value));
    if (iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding")) continue;
    out.append(h.name);
    out.append(": ", 2);
    out.append(h.value);
    out.append("\r\n", 2);
  }
  switch (framing.kind) {
    case BodyFraming::Kind::None:
      break;
    case BodyFraming::Kind::ContentLength:
      out.append("Content-Length: ");
      append_uint(out, framing.length, 10);
      out.append("\r\n", 2);
      break;
    case BodyFraming::Kind::Chunked:
      out.append("Transfer-Encoding: chunked\r\n");
      break;
  }
  out.append("\r\n", 2);
}

}  // namespace

void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         std::span<const Header> headers, BodyFraming framing) {
  assert(no_crlf(method) && no_crlf(target));
  out.append(method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n");
  append_fields(out, headers, framing);
}

void append_response_head(std::string& out, int status, std::span<const Header> headers, BodyFraming framing,
                          std::string_view reason) {
  assert(status >= 100 && status <= 999);
  if (reason.empty()) reason = reason_phrase(status);
  assert(no_crlf(reason));
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<uint64_t>(status), 10);
  out.push_back(' ');
  out.append(reason);
  out.append("\r\n", 2);
  append_fields(out, headers, framing);
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

void append_chunk_header(std::string& out, size_t size) {
  assert(size != 0);
  append_uint(out, size, 16);
  out.append("\r\n", 2);
}

void append_chunk_end(std::string& out) { out.append("\r\n", 2); }

void append_last_chunk(std::string& out) { out.append("0\r\n\r\n", 5); }

}  // namespace corral::http1
