#pragma once
// Per-loop keep-alive connections to worker sockets. A connection is keyed by the slot's
// socket path and generation: connections of a replaced generation are never reused.
// An idle pooled connection that becomes readable (EOF or stray bytes) is closed at once.
// Loop-affine: one pool per loop thread, never shared.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/ev/loop.h"

namespace corral::proxy {

class UpstreamPool;

/// Receives I/O events of a connection while it is checked out of the pool.
class UpstreamIoHandler {
 public:
  virtual ~UpstreamIoHandler() = default;
  virtual void on_upstream_io(bool readable, bool writable) noexcept = 0;
};

/// One connection to a worker socket. Owned by the pool while idle, by an upstream client
/// while in use.
class UpstreamConn {
 public:
  UpstreamConn(ev::Loop& loop, UniqueFd fd, std::string_view path, uint64_t generation);
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  uint64_t generation() const { return generation_; }
  /// True once it has carried a complete exchange (then a failure before any response byte
  /// may be a keep-alive race, which is retried).
  bool reused() const { return reused_; }
  void set_reused() { reused_ = true; }
  /// Routes I/O events to `h` (nullptr: events close the connection when idle in the pool).
  void set_handler(UpstreamIoHandler* h) { handler_ = h; }
  void want(bool read, bool write) { watch_.set(read, write); }
  /// Stops watching and gives up the descriptor (to hand it to another loop); the
  /// connection is unusable afterwards.
  UniqueFd release_fd() {
    watch_.set(false, false);
    return std::move(fd_);
  }

 private:
  friend class UpstreamPool;
  void on_io(bool r, bool w);
  UniqueFd fd_;
  std::string path_;
  uint64_t generation_;
  bool reused_ = false;
  UpstreamIoHandler* handler_ = nullptr;
  UpstreamPool* idle_in_ = nullptr;
  ev::FdWatch watch_;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(ev::Loop& loop, size_t max_idle_per_slot = 256)
      : loop_(loop), max_idle_(max_idle_per_slot) {}
  ~UpstreamPool();
  ev::Loop& loop() const { return loop_; }

  /// An idle connection to (path, generation), or nullptr.
  std::unique_ptr<UpstreamConn> take(std::string_view path, uint64_t generation);
  /// Starts a nonblocking connect. Returns nullptr and sets *err to the errno when the
  /// connect failed at once (ECONNREFUSED, ENOENT, EAGAIN = backlog full). Unix stream
  /// sockets connect synchronously, so a returned connection is usable at once.
  std::unique_ptr<UpstreamConn> connect(std::string_view path, uint64_t generation, int* err);
  /// Returns a connection after a complete exchange; it waits for reuse (or is closed
  /// when the pool for its slot is full).
  void put(std::unique_ptr<UpstreamConn> c);
  /// Closes idle connections whose (path, generation) is not in `live`.
  void retain(const std::vector<std::pair<std::string, uint64_t>>& live);
  size_t idle_count() const;

  /// The loop's shared read buffer for responses (kScratchSize bytes): a response that
  /// arrives whole in one read is parsed from here, so an upstream client owns no read
  /// buffer of its own between requests. nullptr while another client holds it (take your
  /// own buffer then). Give it back with return_scratch() before returning to the loop.
  char* borrow_scratch();
  void return_scratch() { scratch_busy_ = false; }
  static constexpr size_t kScratchSize = 32 * 1024;

 private:
  friend class UpstreamConn;
  struct Bucket {
    std::string path;
    uint64_t generation = 0;
    std::vector<std::unique_ptr<UpstreamConn>> idle;
  };
  Bucket* find(std::string_view path, uint64_t generation);
  void close_idle(UpstreamConn* c);

  ev::Loop& loop_;
  size_t max_idle_;
  std::vector<Bucket> buckets_;
  std::unique_ptr<char[]> scratch_;
  bool scratch_busy_ = false;
};

/// Idle connections shared by every loop thread (FastCGI's: a responder serves one
/// connection at a time, so a connection parked in one loop's pool would hold back the
/// other loops' requests to that slot). Keyed by (path, generation) like UpstreamPool.
/// Nothing watches a connection while it waits: the taker checks it is still quiet
/// (FastcgiClient::take_idle), and retain(), called with every pool update as
/// UpstreamPool::retain is, keeps only the connections of slots that accept requests. A
/// draining worker gets no new request, and it must not wait for its kept connections to
/// close: libfcgi and php-cgi end a connection with a lingering close (shut down their side,
/// then read until the proxy closes), which would hold a recycled or stopping worker for
/// seconds, and leave its socket open here for good once its slot is gone.
/// Thread-safe: the lock is held for a scan of at most kMaxIdle entries, with no I/O but
/// close(2).
class SharedIdleConns {
 public:
  /// The proxy's store (an object of its own in tests).
  static SharedIdleConns& instance();
  SharedIdleConns() = default;
  /// An idle connection to (path, generation), or an empty fd. Connections of another
  /// generation of that path are closed on the way.
  UniqueFd take(std::string_view path, uint64_t generation);
  /// Parks an idle connection (the oldest one is closed when kMaxIdle are waiting); closes
  /// it instead when retain() was called and did not list its slot.
  void put(std::string_view path, uint64_t generation, UniqueFd fd);
  /// The slots (path, generation) that accept requests now: idle connections to others are
  /// closed, now and when put() later.
  void retain(const std::vector<std::pair<std::string, uint64_t>>& accepting);
  size_t size() const;

 private:
  struct Entry {
    std::string path;
    uint64_t generation;
    UniqueFd fd;
  };
  // Mutex held.
  bool accepting_locked(std::string_view path, uint64_t generation) const;
  static constexpr size_t kMaxIdle = 1024;
  mutable std::mutex mu_;
  std::vector<Entry> idle_;
  bool pool_known_ = false;  // retain() was called: accepting_ is the pool
  std::vector<std::pair<std::string, uint64_t>> accepting_;
};

}  // namespace corral::proxy
