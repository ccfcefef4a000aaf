#pragma once
// FastCGI 1.0 records, sans-I/O (the FastCGI Specification, Open Market 1996, §3 and §5):
// the client side of a Responder. Encoding appends records to a caller-owned buffer;
// decoding turns the bytes an application sent into events, one at a time, without copying
// stream content (events are views into the caller's buffer).
//
// The decoder is strict, because what it reads comes from a process the proxy does not
// trust: a version other than 1, a record type other than STDOUT, STDERR or END_REQUEST, a
// request id other than the one sent, or an END_REQUEST whose body is not 8 bytes is an Error
// (the caller answers 502 and closes the connection). END_REQUEST is always delivered as End
// (consuming exactly its record); a byte after it is an Error at the next step, however the
// bytes were split into reads (the caller does not reuse that connection).
// Thread-safe functions; a FastcgiDecoder is one per connection, not thread-safe.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace corral::proxy::fastcgi {

constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 8;
constexpr size_t kMaxContent = 65535;

enum class RecordType : uint8_t {
  BeginRequest = 1,
  AbortRequest = 2,
  EndRequest = 3,
  Params = 4,
  Stdin = 5,
  Stdout = 6,
  Stderr = 7,
  Data = 8,
  GetValues = 9,
  GetValuesResult = 10,
  UnknownType = 11,
};

constexpr uint16_t kRoleResponder = 1;
constexpr uint8_t kFlagKeepConn = 1;

/// END_REQUEST protocolStatus values.
enum class ProtocolStatus : uint8_t { RequestComplete = 0, CantMpxConn = 1, Overloaded = 2, UnknownRole = 3 };

/// Appends one record header (version 1).
void append_header(std::string& out, RecordType type, uint16_t request_id, uint16_t content_length,
                   uint8_t padding_length);

/// Appends BEGIN_REQUEST with role RESPONDER; `keep_conn` sets FCGI_KEEP_CONN (the
/// application keeps the connection open after END_REQUEST).
void append_begin_request(std::string& out, uint16_t request_id, bool keep_conn);

/// Appends one name-value pair in PARAMS encoding: each length in 1 byte when below 128,
/// else 4 bytes with the high bit set. Lengths above 2^31-1 cannot be encoded: false, nothing appended.
bool append_name_value(std::string& out, std::string_view name, std::string_view value);

/// Appends the PARAMS stream for `params`: as many records as needed (each at most
/// kMaxContent bytes, padded to a multiple of 8), then the empty record that ends the stream.
/// Pairs that cannot be encoded are skipped.
void append_params(std::string& out, uint16_t request_id,
                   std::span<const std::pair<std::string, std::string>> params);

/// One piece of a STDIN stream to send: record header bytes (in `headers`, at `header_offset`)
/// followed by `length` body bytes starting at body offset `body_offset`.
struct StdinRecord {
  size_t header_offset;
  size_t body_offset;
  size_t length;
};

/// The STDIN stream for a body of `body_size` bytes: appends every record header to `headers`
/// (records of at most `chunk` content bytes, no padding, then the empty record that ends
/// the stream) and returns, through `emit`, where each goes. The body bytes themselves are
/// not copied: the caller sends header, then body[body_offset, +length), record by record.
template <typename Emit>
void plan_stdin(std::string& headers, uint16_t request_id, size_t body_size, Emit&& emit, size_t chunk = 32768) {
  for (size_t off = 0; off < body_size; off += chunk) {
    size_t n = body_size - off < chunk ? body_size - off : chunk;
    size_t at = headers.size();
    append_header(headers, RecordType::Stdin, request_id, static_cast<uint16_t>(n), 0);
    emit(StdinRecord{at, off, n});
  }
  size_t at = headers.size();
  append_header(headers, RecordType::Stdin, request_id, 0, 0);
  emit(StdinRecord{at, body_size, 0});
}

/// Decodes PARAMS content (used by tests and a FastCGI test server): calls `pair(name, value)`
/// for each pair. False when the content is truncated or a length is malformed.
template <typename Pair>
bool decode_params(std::string_view content, Pair&& pair) {
  auto length = [&](uint32_t& len) {
    if (content.empty()) return false;
    auto b0 = static_cast<uint8_t>(content[0]);
    if (b0 < 0x80) {
      len = b0;
      content.remove_prefix(1);
      return true;
    }
    if (content.size() < 4) return false;
    len = (static_cast<uint32_t>(b0 & 0x7f) << 24) | (static_cast<uint32_t>(static_cast<uint8_t>(content[1])) << 16) |
          (static_cast<uint32_t>(static_cast<uint8_t>(content[2])) << 8) | static_cast<uint8_t>(content[3]);
    content.remove_prefix(4);
    return true;
  };
  while (!content.empty()) {
    uint32_t nl = 0, vl = 0;
    if (!length(nl) || !length(vl)) return false;
    if (content.size() < static_cast<size_t>(nl) + vl) return false;
    pair(content.substr(0, nl), content.substr(nl, vl));
    content.remove_prefix(static_cast<size_t>(nl) + vl);
  }
  return true;
}

/// Turns an application's bytes into events for one request.
class Decoder {
 public:
  enum class Kind {
    NeedMore,  ///< everything given was consumed (or too little for a header); call again with more
    Stdout,    ///< `data` is STDOUT content (possibly part of a record)
    Stderr,    ///< `data` is STDERR content (possibly part of a record)
    End,       ///< END_REQUEST: app_status, protocol_status
    Error,     ///< `why` (a static string); the decoder stays in error
  };
  struct Event {
    Kind kind = Kind::NeedMore;
    size_t consumed = 0;  ///< bytes of the input used by this step (drop them before the next call)
    std::string_view data;
    uint32_t app_status = 0;
    ProtocolStatus protocol_status = ProtocolStatus::RequestComplete;
    const char* why = "";
  };

  /// Starts a request: records must carry `request_id`.
  void start(uint16_t request_id);
  /// One step over `buf` (the unconsumed input). Empty STDOUT/STDERR records (the end of a
  /// stream) produce no event. After End, any further byte is an Error (End itself is
  /// returned even when more bytes follow it in `buf`).
  Event step(std::string_view buf);
  bool ended() const { return state_ == State::Ended; }

 private:
  enum class State { Header, Content, Padding, Ended, Failed };
  Event fail(const char* why, size_t consumed = 0) {
    state_ = State::Failed;
    why_ = why;
    Event e;
    e.kind = Kind::Error;
    e.consumed = consumed;
    e.why = why;
    return e;
  }
  State state_ = State::Header;
  uint16_t request_id_ = 1;
  RecordType type_ = RecordType::Stdout;
  size_t content_left_ = 0;
  size_t padding_left_ = 0;
  const char* why_ = "";
};

}  // namespace corral::proxy::fastcgi
