#pragma once
// A minimal, independent HTTP/1.1 request reader for the test app. It deliberately shares
// no code with corral (it is the peer corral is tested against): blocking reads on one fd,
// request line + headers, Content-Length and chunked bodies, keep-alive rules.
//
// Not thread-safe: one RequestReader per connection thread.
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace testapp {

/// One parsed request. Headers are kept exactly as received, in order.
struct Request {
  std::string method;
  std::string target;
  std::string version;  ///< "HTTP/1.1" or "HTTP/1.0"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// The head exactly as it arrived, request line to the final CRLF CRLF (also for a head
  /// the reader rejects as Malformed): what TESTAPP_CAPTURE records.
  std::string raw_head;
  bool keep_alive = true;
  /// When set before read_body: body bytes go here as they are read, not into `body`
  /// (large uploads without holding them).
  std::function<void(const char*, size_t)> body_sink;

  /// The first header named `name` (case-insensitive), or nullptr.
  const std::string* header(const std::string& name) const;
  /// The path part of the target (before '?').
  std::string path() const;
  /// The value of query parameter `key`, or `fallback` when absent.
  std::string query(const std::string& key, const std::string& fallback = "") const;
};

/// Result of reading one request.
enum class ReadStatus {
  Ok,          ///< a complete request (head + body) is in `out`
  Closed,      ///< the peer closed (or the read failed) before the first byte of a request
  Malformed,   ///< a protocol error: answer 400 and close
  TooLarge,    ///< the head exceeded the limit: answer 431 and close
};

class RequestReader {
 public:
  /// `fd` is borrowed; the caller keeps ownership.
  explicit RequestReader(int fd) : fd_(fd) {}

  /// Reads the next request head. `on_first_byte` is called once the first byte of a
  /// request has arrived (the connection is then no longer idle).
  template <typename F>
  ReadStatus read_head(Request& out, F&& on_first_byte) {
    bool notified = false;
    for (;;) {
      if (buf_.size() > pos_ && !notified) {
        notified = true;
        on_first_byte();
      }
      size_t end = buf_.find("\r\n\r\n", pos_);
      if (end != std::string::npos) return parse_head(out, end);
      if (buf_.size() - pos_ > kMaxHead) return ReadStatus::TooLarge;
      if (!fill()) return buf_.size() == pos_ ? ReadStatus::Closed : ReadStatus::Malformed;
    }
  }

  /// Reads the body announced by the head parsed last into `out.body`.
  ReadStatus read_body(Request& out);

  static constexpr size_t kMaxHead = 64 * 1024;

 private:
  ReadStatus parse_head(Request& out, size_t end);
  ReadStatus read_body_bytes(Request& out);
  bool fill();  // one read(2) appended to buf_; false on EOF or error
  bool read_line(std::string& line);  // a CRLF-terminated line from the buffer

  int fd_;
  std::string buf_;
  size_t pos_ = 0;  // consumed prefix of buf_ (compacted between requests)
};

}  // namespace testapp
