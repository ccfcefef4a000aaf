#pragma once
// A request body on its way from a client to a worker.
//
// Buffered (the default): the whole body is received before a worker is chosen, so a slow
// upload never holds a worker. Up to `memory` bytes ([proxy] client_body_buffer_size) stay in
// memory; a larger body spills to an unlinked temp file in [proxy] temp_dir (O_TMPFILE, or
// mkstemp + unlink where the file system lacks it), written as it arrives, and the worker is
// fed from the file (sendfile for HTTP/1.1 workers, pread for FastCGI). Memory per upload is
// bounded by `memory` whatever max_body_size is.
//
// Streaming (an app with request_buffering = false): the worker is chosen when the head is
// accepted and bytes go to it as they arrive. Memory holds what the worker has not taken yet;
// the frontend stops reading from the client once that reaches `memory` (backpressure) and
// reads on after on_body_drained().
//
// The frontend writes (append, finish, fail); the upstream client reads (peek, release). The
// temp file is closed by close() (the exchange calls it when its request ends: response
// complete, error or cancel) and by reset() and the destructor.
// Loop-affine: writer and reader run on the same loop thread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/unique_fd.h"
#include "proxy/metrics/metrics.h"

namespace corral::proxy {

struct Runtime;  // proxy/runtime.h

/// The upstream side of a streamed body: more bytes arrived, or the body ended (complete or
/// failed). Called from inside RequestBody::append/finish/fail, on the loop thread: only
/// note it (arm a write watch), never write or call back into the frontend from here.
class BodyReader {
 public:
  virtual ~BodyReader() = default;
  virtual void on_body_more() noexcept = 0;
};

/// The frontend side of a streamed body: the reader released bytes, memory has room again.
/// Called from inside RequestBody::release on the loop thread: only re-arm reading.
class BodyWriter {
 public:
  virtual ~BodyWriter() = default;
  virtual void on_body_drained() noexcept = 0;
};

class RequestBody {
 public:
  RequestBody() = default;
  RequestBody(const RequestBody&) = delete;
  RequestBody& operator=(const RequestBody&) = delete;

  struct Settings {
    uint64_t max_size = 0;        ///< [proxy] max_body_size: more → TooLarge
    uint64_t memory = 64 * 1024;  ///< [proxy] client_body_buffer_size
    std::string_view temp_dir;    ///< where a spilled body's file is made (must outlive the body)
    bool streaming = false;       ///< request_buffering = false
    metrics::LoopCounters* counters = nullptr;  ///< spills and temp-file errors are counted here (may be null)
  };
  /// The settings for a request body under `rt`: its [proxy] max_body_size,
  /// client_body_buffer_size and effective temp_dir (`rt` must outlive the body), counted in
  /// `counters` (may be null).
  static Settings settings(const Runtime& rt, metrics::LoopCounters* counters, bool streaming);

  /// Starts a new body: closes a temp file still open, empties memory (keeps capacity).
  void reset(const Settings& s);

  enum class Status { Ok, TooLarge, TempFileError };
  /// Appends received body bytes. TooLarge: max_size would be passed (nothing appended).
  /// TempFileError: the temp file could not be made or written (errno in error()); the body
  /// is unusable (answer 500). The failure is counted and logged here (at most one line a
  /// second for all bodies: a full disk fails every upload alike).
  [[nodiscard]] Status append(std::string_view bytes);
  int error() const { return errno_; }

  /// Every byte has been received (the decoder saw the end of the body).
  void finish();
  /// The body will never be complete (client gone, bad framing, timeout): a streaming
  /// reader aborts its request to the worker.
  void fail();
  bool complete() const { return complete_; }
  bool failed() const { return failed_; }
  /// close() was called: the request is over, bytes still arriving are dropped.
  bool closed() const { return closed_; }

  /// Bytes received so far.
  uint64_t size() const { return size_; }
  /// The body went to a temp file (buffered mode only).
  bool spilled() const { return fd_.get() >= 0; }
  /// Bytes held in memory now.
  size_t memory_held() const { return data_.size(); }
  /// Streaming: true while memory holds `memory` bytes or more (the frontend stops reading).
  bool full() const { return streaming_ && !closed_ && data_.size() >= memory_; }
  /// Streaming: bytes the reader has released so far (sent to the worker).
  uint64_t released() const { return base_; }

  /// A stretch of body bytes at some offset: in memory (`data`) or in the temp file (`fd` at
  /// `offset`). len == 0: nothing available there now (not received yet, or the end).
  struct Piece {
    const char* data = nullptr;
    int fd = -1;
    uint64_t offset = 0;
    size_t len = 0;
  };
  /// At most `max` bytes starting at body offset `at`. Streaming: `at` must not be below
  /// what was released.
  Piece peek(uint64_t at, size_t max) const;
  /// Streaming: the reader has sent everything below `upto`; memory for it is freed and the
  /// writer told (on_body_drained). No-op when buffered.
  void release(uint64_t upto);
  /// The body can still be read from offset 0 (a resend on a fresh connection is possible).
  bool replayable() const { return !streaming_ || base_ == 0; }

  void set_reader(BodyReader* r) { reader_ = r; }
  void set_writer(BodyWriter* w) { writer_ = w; }

  /// The request is over: closes the temp file and frees memory beyond kKeepCapacity.
  /// Idempotent. The body reads as empty afterwards.
  void close();
  /// Drops all memory (idle connections should not pin buffers).
  void shrink();

  static constexpr size_t kKeepCapacity = 64 * 1024;

 private:
  Status spill(std::string_view more);
  bool write_all(std::string_view bytes);
  void temp_error();

  std::string data_;       // memory part: bytes [base_, base_ + data_.size()) (streaming), or all (buffered)
  uint64_t base_ = 0;      // streaming: body offset of data_[0]
  uint64_t size_ = 0;      // bytes received
  uint64_t max_size_ = 0;
  uint64_t memory_ = 64 * 1024;
  std::string_view temp_dir_;
  UniqueFd fd_;            // spilled body (unlinked file)
  int errno_ = 0;
  bool streaming_ = false, complete_ = false, failed_ = false, closed_ = false;
  BodyReader* reader_ = nullptr;
  BodyWriter* writer_ = nullptr;
  metrics::LoopCounters* counters_ = nullptr;
};

/// Opens an unlinked temp file in `dir` (O_TMPFILE, else mkstemp + unlink), close-on-exec,
/// mode 0600. Returns -1 with errno set on failure.
int open_unlinked_temp(std::string_view dir);

}  // namespace corral::proxy
