#pragma once
// Parser for the header block a CGI program (or a FastCGI app's STDOUT) writes before its
// body (RFC 3875 §6): "Name: value" lines ended by LF or CRLF, then an empty line. Sans-I/O:
// call parse() with all bytes received so far; on Done the body starts at buf[consumed].
// Strict: a name that is not a token, a control character in a value, a bad Status or
// Content-Length, an empty block, more than kMaxHeadSize bytes or kMaxFields lines is an
// Error (the caller answers 502). Not thread-safe; one per response.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral::cgi {

/// What the response asks the server to do (RFC 3875 §6.2).
enum class ResponseKind {
  Document,        ///< send status, headers and body
  LocalRedirect,   ///< "Location: /path" without Status: serve GET /path instead
  ClientRedirect,  ///< "Location: scheme://..." (or "/path" with a Status): 302 unless Status says otherwise
};

struct ResponseHead {
  ResponseKind kind = ResponseKind::Document;
  int status = 200;
  std::string reason;  ///< from Status; empty = the standard phrase
  std::string location;  ///< the Location field's value (the field itself stays in `headers`)
  std::optional<uint64_t> content_length;
  /// Every other field, in order, as received, Location included. Hop-by-hop and framing
  /// fields (Connection, Keep-Alive, Transfer-Encoding, ...) and Status/Content-Length are
  /// removed.
  std::vector<std::pair<std::string, std::string>> headers;
};

class ResponseHeadParser {
 public:
  // Below what the proxy reads a worker's response head with (64 KiB, 256 fields:
  // proxy/upstream/http1_client.cc), so the HTTP/1.1 head corral-worker makes of a block
  // (CRLFs, ": ", its framing and Connection fields) always parses there.
  static constexpr size_t kMaxHeadSize = 32 * 1024;
  static constexpr size_t kMaxFields = 200;
  enum class Status { Incomplete, Done, Error };

  /// Parses from the start of `buf`. Resumes scanning where an Incomplete call stopped (the
  /// earlier bytes must be unchanged). On Done, `out` is filled and consumed() is the head's
  /// size; on Error, error() says why (a static string).
  Status parse(std::string_view buf, ResponseHead& out);
  size_t consumed() const { return consumed_; }
  const char* error() const { return error_; }
  void reset() { *this = ResponseHeadParser(); }

 private:
  Status fail(const char* why) {
    error_ = why;
    return Status::Error;
  }
  size_t scanned_ = 0;
  size_t consumed_ = 0;
  const char* error_ = "";
};

}  // namespace corral::cgi
