#pragma once
// corral's strict HTTP/1.1 parser (RFC 9112), sans-I/O: bytes in, head views and body spans
// out. No copies: every string_view points into the caller's buffer, which must stay
// unchanged until the caller is done with the head. No per-byte callbacks, no allocation
// after the first message (the header vector is reused).
//
// Used for client requests (RequestParser) and worker responses (ResponseParser) alike.
// Nothing lenient: bare CR or LF, obsolete line folding, whitespace before a colon, a
// header block not ended by exactly CRLF CRLF, junk before the request line,
// Content-Length together with Transfer-Encoding, differing duplicate Content-Lengths,
// any Transfer-Encoding other than a single final "chunked", Transfer-Encoding on
// HTTP/1.0, chunk sizes that overflow, chunk data not followed by CRLF: all are errors.
//
// Not thread-safe; one parser per connection.
#include <cstdint>
#include <string_view>
#include <vector>

namespace corral::http1 {

struct Header {
  std::string_view name;   ///< as received (case preserved); compare with iequals
  std::string_view value;  ///< leading/trailing OWS removed
};

/// How the body of a message is delimited.
enum class BodyKind {
  None,           ///< no body (GET without length, 204, 304, HEAD response, 1xx)
  ContentLength,  ///< exactly content_length bytes
  Chunked,        ///< chunked transfer coding
  UntilClose,     ///< responses only: read until the connection closes
};

/// Bounds on single tokens of a request head (within max_head_size): a longer method gets
/// 501 (RFC 9112 §3), a longer field name 431 (RFC 9110 §5.4). The request-target is bounded
/// by max_head_size (414).
inline constexpr size_t kMaxMethodSize = 32;
inline constexpr size_t kMaxFieldNameSize = 256;

struct Limits {
  size_t max_head_size = 16 * 1024;  ///< request/status line + headers + CRLFs
  size_t max_header_count = 100;
};

/// Why a message was rejected. `status` is the response a server should send for a
/// request (400, 414, 417, 431, 501, 505; the BodyDecoder gives 400 or 431); for responses
/// the parser always gives 502. See common/http1/README.md for the strictness choices.
struct ParseError {
  int status = 400;
  const char* reason = "";  ///< static string for logs: "bare LF in header block"
};

enum class ParseStatus { Incomplete, Done, Error };

struct RequestHead {
  std::string_view method;
  std::string_view target;  ///< origin-form, absolute-form, authority-form (CONNECT) or "*"
  int version_minor = 1;    ///< HTTP/1.0 → 0, HTTP/1.1 → 1
  std::vector<Header> headers;

  // Derived while parsing:
  std::string_view host;  ///< the Host header (required for HTTP/1.1), or the absolute-form authority
  /// The authority of an absolute-form target ("http://a.example:8080/x" → "a.example:8080"),
  /// or of a CONNECT authority-form target; empty for origin-form and "*". For absolute-form it
  /// wins over the Host field (RFC 9112 §3.2.2), which must still be present and valid.
  std::string_view authority;
  BodyKind body = BodyKind::None;
  uint64_t content_length = 0;
  bool keep_alive = true;       ///< from version and Connection
  bool expect_continue = false; ///< "Expect: 100-continue"
  /// The Upgrade field's value when there is exactly one and Connection lists "upgrade"
  /// (a request asking to switch protocols); empty otherwise.
  std::string_view upgrade;
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  int version_minor = 1;
  std::vector<Header> headers;

  BodyKind body = BodyKind::None;
  /// The body's length for ContentLength; for a response without a body (HEAD, 304) the
  /// length its Content-Length field announced (0 when there was none).
  uint64_t content_length = 0;
  /// A Content-Length field was present, whatever `body` is (a HEAD response passes the
  /// GET's length on only when the worker sent one: RFC 9110 §9.3.2).
  bool has_content_length = false;
  bool keep_alive = true;
};

/// Result of a head parse. On Done, `consumed` is the size of the head in bytes
/// (the body, if any, starts at buf[consumed]).
struct HeadResult {
  ParseStatus status = ParseStatus::Incomplete;
  size_t consumed = 0;
  ParseError error;
};

namespace detail {
/// Progress of the end-of-head scan, kept between Incomplete calls (offsets, not pointers, so
/// the caller may move its buffer between calls as long as the bytes are the same).
struct HeadScan {
  size_t start = 0;           ///< first byte of the start line (after an allowed leading CRLF)
  size_t pos = 0;             ///< next byte to search for LF
  size_t line_start = 0;      ///< first byte of the line being scanned
  size_t first_line_end = 0;  ///< one past the LF ending the start line; 0 until seen
  size_t head_end = 0;        ///< one past the final CRLF; 0 until seen
  bool started = false;       ///< the leading-CRLF decision has been made
  bool failed = false;        ///< an error was returned; `error` is repeated until reset()
  ParseError error;
};
}  // namespace detail

class RequestParser {
 public:
  explicit RequestParser(Limits limits = {});

  /// Parses a request head from the start of buf (all bytes received for this message so
  /// far). Call again with a longer buf after Incomplete; scanning resumes where it stopped
  /// (the earlier bytes must be unchanged, their address may differ). One leading CRLF is
  /// skipped, a second is an error. Over max_head_size without a complete head → Error 431
  /// (or 414 while the request line is unterminated). After Error, every call repeats the
  /// error until reset(). On Done, `out` views point into buf; out.headers is cleared and
  /// refilled (its capacity is kept).
  HeadResult parse(std::string_view buf, RequestHead& out);
  /// Forget progress; call before parsing the next message.
  void reset();

 private:
  Limits limits_;
  detail::HeadScan scan_;
};

class ResponseParser {
 public:
  explicit ResponseParser(Limits limits = {});

  /// Like RequestParser::parse. request_method decides the body (HEAD → none); 1xx
  /// responses are returned as heads too (the caller skips them and resets).
  HeadResult parse(std::string_view buf, std::string_view request_method, ResponseHead& out);
  /// Forget progress; call before parsing the next message (also after a 1xx head).
  void reset();

 private:
  Limits limits_;
  detail::HeadScan scan_;
};

/// Decodes a body framed by Content-Length, chunked, or until-close. Streams: data spans
/// point into the input given to step(). Trailers of a chunked body are validated and dropped.
/// Chunk lines are stricter than RFC 9112's grammar: no BWS around ';' or '=', at most 16
/// hex digits and a size below 2^63, extensions (`;token[=token|quoted-string]`) at most
/// kMaxChunkExtension bytes per chunk line. Trailer section: at most kMaxTrailerBytes bytes
/// and kMaxTrailerFields fields, each a valid field line (no obs-fold, no bare CR/LF).
/// Errors carry status 400 (the caller maps it to 502 for responses).
class BodyDecoder {
 public:
  struct Step {
    size_t consumed = 0;       ///< bytes of input used by this step
    std::string_view data;     ///< body bytes produced by this step (may be empty)
    bool done = false;         ///< the body is complete
    bool error = false;
    ParseError why;
  };

  static constexpr size_t kMaxChunkExtension = 1024;
  static constexpr size_t kMaxTrailerBytes = 16 * 1024;
  static constexpr size_t kMaxTrailerFields = 100;

  BodyDecoder() = default;
  /// Begins a new body (resets all state). None, or ContentLength 0, is done at once.
  void start(BodyKind kind, uint64_t content_length = 0);
  /// Consumes a prefix of `in`. Call repeatedly while consumed > 0 and !done && !error.
  Step step(std::string_view in);
  /// For UntilClose: the connection closed, which ends the body. Returns false if the body
  /// was not allowed to end here (truncated Content-Length or chunked body).
  bool on_eof();
  bool done() const { return state_ == State::Done; }
  /// Body bytes still expected for ContentLength.
  uint64_t remaining() const { return remaining_; }

 private:
  enum class State { Idle, Length, ChunkSize, ChunkExt, ChunkSizeLf, ChunkData, ChunkDataCr, ChunkDataLf,
                     Trailer, TrailerLf, TrailerLine, TrailerLineLf, UntilClose, Done, Error };
  /// Position inside a chunk extension: `;name[=token|"quoted"]` repeated.
  enum class Ext : uint8_t { NameStart, Name, ValueStart, Token, Quoted, QuotedEscape, AfterQuoted };

  bool chunk_ext_byte(char c, ParseError& why);
  bool trailer_byte(char c, ParseError& why);

  State state_ = State::Idle;
  Ext ext_ = Ext::NameStart;
  uint64_t remaining_ = 0;
  uint64_t chunk_digits_ = 0;
  size_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  size_t trailer_count_ = 0;
  size_t trailer_name_len_ = 0;
  bool trailer_in_value_ = false;
  ParseError error_;
};

}  // namespace corral::http1
