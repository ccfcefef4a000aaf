#pragma once
// The response filter between a worker's response and the frontend sink: decides whether a
// response is compressed, rewrites its head, and streams its body through an Encoder.
//
// A response is compressed when the route lists a coding the client accepts
// (Accept-Encoding), it is not an answer to HEAD, its status is 200-599 but not 204, 206 or
// 304, it has a body, no Content-Encoding and no Content-Range, no "Cache-Control:
// no-transform", a Content-Type among the route's compress_types, and a Content-Length of at
// least compress_min_size (an unknown length counts as large). Then Content-Length and
// Accept-Ranges are dropped (HTTP/1.1 sends it chunked, HTTP/2 without content-length),
// Content-Encoding is added, a strong ETag becomes weak (W/), and Vary gets Accept-Encoding.
// A response that would have been compressed for another client (the same checks but
// Accept-Encoding, and HEAD) gets the Vary alone. Loop-affine.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/http1/parser.h"
#include "conf/config.h"
#include "proxy/compress/accept_encoding.h"
#include "proxy/compress/encoder.h"

namespace corral::proxy::compress {

/// A route's compression settings, built once per config snapshot. Immutable.
struct Policy {
  std::vector<Coding> codings;  ///< preferred first; never empty (no Policy = off)
  uint64_t min_size = 1024;
  std::vector<std::string> types;  ///< lower case: "type/subtype", "type/*", "type/*+suffix", "*/*"
  int gzip_level = 5;
  int brotli_level = 4;
};

/// The route's Policy, or null when its compress list is empty.
std::shared_ptr<const Policy> make_policy(const conf::Route& route);

/// True when the media type of a Content-Type value (parameters ignored, any case) matches
/// one of `patterns`.
bool type_matches(const std::vector<std::string>& patterns, std::string_view content_type);

class ResponseFilter {
 public:
  enum class Decision {
    Pass,      ///< sent as is
    PassVary,  ///< sent as is, with Vary: Accept-Encoding added
    Compress,  ///< compressed with coding()
  };

  /// Decides for the response `head` to a request whose Accept-Encoding fields are `accept`.
  /// For PassVary and Compress, `out` is the head to send instead (views into `head` and
  /// this filter: valid until the next start()).
  Decision start(const Policy& policy, const AcceptEncoding& accept, bool head_request,
                 const http1::ResponseHead& head, http1::ResponseHead& out);
  bool active() const { return encoder_.active(); }
  Coding coding() const { return encoder_.coding(); }
  bool write(std::string_view data, Output& out) { return encoder_.write(data, out); }
  /// Flushes what the codec holds (the worker went quiet): the client can decode all so far.
  bool flush(Output& out) { return encoder_.flush(out); }
  /// Ends the compressed stream and gives the codec state back.
  bool finish(Output& out) { return encoder_.finish(out); }
  /// Drops the response (client gone, worker failed): the codec state goes back.
  void reset() { encoder_.release(); }
  uint64_t bytes_in() const { return encoder_.bytes_in(); }
  uint64_t bytes_out() const { return encoder_.bytes_out(); }

 private:
  Encoder encoder_;
  std::string etag_;  ///< the weakened ETag's value
};


}  // namespace corral::proxy::compress
