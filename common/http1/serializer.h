#pragma once
// corral's HTTP/1.1 serializer: appends request heads, response heads and chunk framing to a
// caller-owned std::string (the caller clears it and reuses its capacity; nothing here
// allocates beyond growing that string). Field names and values are written as given: the
// caller has validated them (they come from a parsed message or from corral itself); a CR
// or LF in them is a bug, caught by assert() in debug builds.
//
// Framing is always the caller's choice (BodyFraming), never copied from the headers:
// Content-Length and Transfer-Encoding fields in the given list are skipped, so a message
// can never carry two framings. Stateless functions; thread-safe.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/http1/parser.h"

namespace corral::http1 {

/// The body framing to announce in a serialized head.
struct BodyFraming {
  enum class Kind {
    None,           ///< no framing field (no body, or a response delimited by close)
    ContentLength,  ///< "Content-Length: <length>"
    Chunked,        ///< "Transfer-Encoding: chunked"; the caller then writes chunks
  };
  Kind kind = Kind::None;
  uint64_t length = 0;  ///< for ContentLength

  static BodyFraming none() { return {}; }
  static BodyFraming content_length(uint64_t n) { return {Kind::ContentLength, n}; }
  static BodyFraming chunked() { return {Kind::Chunked, 0}; }
};

/// Appends "METHOD target HTTP/1.1\r\n", the headers (minus framing fields), the framing
/// field and the final CRLF.
void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         std::span<const Header> headers, BodyFraming framing);

/// Appends "HTTP/1.1 <status> <reason>\r\n", the headers (minus framing fields), the
/// framing field and the final CRLF. An empty `reason` uses reason_phrase(status).
void append_response_head(std::string& out, int status, std::span<const Header> headers, BodyFraming framing,
                          std::string_view reason = {});

/// The canonical reason phrase of RFC 9110 §15 ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(int status);

/// Appends a chunk header: the size in lowercase hex and CRLF. `size` must not be 0 (that
/// is the last chunk).
void append_chunk_header(std::string& out, size_t size);
/// Appends the CRLF that ends a chunk's data.
void append_chunk_end(std::string& out);
/// Appends the last chunk and the empty trailer section: "0\r\n\r\n".
void append_last_chunk(std::string& out);

}  // namespace corral::http1
