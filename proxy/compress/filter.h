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

/// Calls fn(value) for each field called `name` (any case) in an HTTP/1.1 head as the proxy
/// writes it ("Name: value\r\n" lines after the start line).
template <typename Fn>
void for_each_field(std::string_view head, std::string_view name, Fn&& fn);

/// The Accept-Encoding of a re-framed request head (what the proxy sends the worker).
AcceptEncoding request_accept_encoding(std::string_view request_head);

class ResponseFilter {
 public:
  enum class Decision {
    Pass,      ///< sent as is
    PassVary,  ///< sent as is, with Vary: Accept-Encoding added
    Compress,  ///< compressed with coding()
  };

  /// Decides for the response `head` to a request whose re-framed head is `request_head`.
  /// For PassVary and Compress, `out` is the head to send instead (views into `head` and
  /// this filter: valid until the next start()).
  Decision start(const Policy& policy, std::string_view request_head, bool head_request,
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

// ---- template definition --------------------------------------------------------------------

template <typename Fn>
void for_each_field(std::string_view head, std::string_view name, Fn&& fn) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    pos += 2;
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos || end == pos) return;
    std::string_view line = head.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (size_t i = 0; i < colon && same; ++i) {
        char a = line[i], b = name[i];
        if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
        same = a == b;
      }
      if (same) {
        std::string_view v = line.substr(colon + 1);
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        fn(v);
      }
    }
    pos = end;
  }
}

}  // namespace corral::proxy::compress
