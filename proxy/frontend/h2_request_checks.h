#pragma once
// The RFC 9113 rules the HTTP/2 front end enforces on top of nghttp2 1.52 (which enforces
// frame rules, field-name/value characters, pseudo-header presence, order and repetition,
// connection-specific fields, content-length against DATA, and trailers itself):
//   - check_request_head(): pseudo-header values that would not make a valid HTTP/1.1
//     request line and Host field (§8.3.1); and the requests the proxy answers itself, as
//     for an HTTP/1.1 client: a method longer than the HTTP/1.1 parser takes (501), and
//     local_answer() (proxy/forwarding_headers.h): a plain CONNECT (§8.5, 501), OPTIONS *
//     and OPTIONS/TRACE with Max-Forwards 0 or an invalid Max-Forwards (400);
//   - StreamIds: a HEADERS frame on a stream identifier that is not new and not open
//     (§5.1.1: lower than one already used, skipped, or closed), which nghttp2 ignores.
// Sans-I/O, no nghttp2 types: unit-tested in tests/unit/proxy/h2_request_checks_test.cc.
// The list of rules, each with its test, is tests/hostile/README.md (RFC 9113).
#include <array>
#include <cstdint>
#include <string_view>

namespace corral::proxy::h2 {

/// The pseudo-header fields and the Host field of one HTTP/2 request (empty = absent), and
/// its Max-Forwards fields (looked at for OPTIONS and TRACE only).
struct RequestFields {
  std::string_view method, scheme, path, authority, host, protocol;
  std::string_view max_forwards;  ///< the first Max-Forwards value
  int max_forwards_count = 0;
};

/// What the front end does with a request head.
enum class HeadVerdict {
  Ok,         ///< becomes an HTTP/1.1 request (or an RFC 8441 tunnel)
  Malformed,  ///< RST_STREAM(PROTOCOL_ERROR); never reaches a worker (§8.1.1)
  Answer,     ///< the proxy answers with `status` itself, as it does an HTTP/1.1 client
};

struct HeadCheck {
  HeadVerdict verdict = HeadVerdict::Ok;
  const char* reason = "";  ///< static string for logs and the rejection counter ("" for a plain answer)
  int status = 0;           ///< for Answer
};

/// Checks a request head whose fields nghttp2 has accepted. Pure; thread-safe.
HeadCheck check_request_head(const RequestFields& f);

/// The client's stream identifiers on one connection (RFC 9113 §5.1.1). Loop-affine (owned
/// by its Http2Session).
class StreamIds {
 public:
  /// A HEADERS frame begins on stream `id` (odd and non-zero: nghttp2 itself ends the
  /// connection for 0 and even ids); `known` says whether nghttp2 still has that stream
  /// (open: trailers; half-closed or closed: nghttp2 answers by the stream's state). False:
  /// the identifier is unexpected (not above every identifier used so far, not known, and
  /// not one the server reset lately, whose late frames must be ignored) and the connection
  /// ends with GOAWAY(PROTOCOL_ERROR).
  bool on_headers(int32_t id, bool known);
  /// The server sent RST_STREAM on `id`: a HEADERS frame the client sent before it saw the
  /// reset (trailers) is ignored, not a connection error (§5.1, "closed").
  void on_reset_sent(int32_t id);
  /// The highest identifier a HEADERS frame has used.
  int32_t max_id() const { return max_id_; }

 private:
  // The last kRecentResets reset streams; more cannot race a reset within one round trip
  // on a connection whose resets are rate-limited.
  static constexpr size_t kRecentResets = 16;
  std::array<int32_t, kRecentResets> reset_{};
  uint32_t next_reset_ = 0;
  int32_t max_id_ = 0;
};

}  // namespace corral::proxy::h2
