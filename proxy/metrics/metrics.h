#pragma once
// The proxy's counters. Every block is written by one event-loop thread only (its own
// copy, cache-line aligned) and read by whichever thread renders /metrics or samples the
// status page: a write is a relaxed load and a relaxed store of the thread's own word (a
// plain add on x86, no lock prefix), a read sums the copies of every thread. No lock and no
// shared atomic on the request path; a scrape may see a request's counters half-updated,
// which only moves it to the next scrape.
//
// Blocks that carry labels (a route, a listener) are shared_ptr-owned by the Runtime
// snapshot and kept by name across reloads (Server keeps the maps), so a counter keeps
// counting while its route or listener persists.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace corral::proxy::metrics {

/// A counter with one writer thread.
class Counter {
 public:
  void add(uint64_t n = 1) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

/// An up/down gauge with one writer thread (summed over threads it gives the level).
class Level {
 public:
  void add(int64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  int64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

/// Upper bounds (seconds) of the latency histograms: 1 ms to 30 s, then +Inf.
inline constexpr std::array<double, 14> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                    0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0};
inline constexpr size_t kBucketCount = kBuckets.size() + 1;  // + the +Inf bucket

/// A latency histogram with one writer thread. Counts per bucket (not cumulative) and the
/// sum in microseconds.
class Histogram {
 public:
  void observe(double seconds) noexcept;
  const std::array<Counter, kBucketCount>& buckets() const { return buckets_; }
  uint64_t sum_us() const { return sum_us_.get(); }

 private:
  std::array<Counter, kBucketCount> buckets_;
  Counter sum_us_;
};

/// A histogram's figures summed over threads (or the difference of two such sums).
struct HistogramTotals {
  std::array<uint64_t, kBucketCount> buckets{};  ///< per bucket, not cumulative
  uint64_t sum_us = 0;

  void add(const Histogram& h);
  uint64_t count() const;
  /// The q-quantile (0..1) by linear interpolation inside its bucket (as Prometheus's
  /// histogram_quantile does); 0 when empty; the last finite bound for the +Inf bucket.
  double quantile(double q) const;
  HistogramTotals minus(const HistogramTotals& earlier) const;
};

enum class Protocol : uint8_t { Http1 = 0, Http2 = 1 };
inline constexpr size_t kProtocols = 2;
std::string_view protocol_label(Protocol p);

/// Status class index: 0 = 1xx … 4 = 5xx; 5 = none (no response was sent).
inline constexpr size_t kStatusClasses = 6;
size_t status_class(int status);
std::string_view status_class_label(size_t i);

/// Why a request routed to an app got a 503 without reaching a worker.
enum class QueueReject : uint8_t { QueueFull = 0, QueueTimeout = 1, NoWorkers = 2 };
inline constexpr size_t kQueueRejects = 3;
std::string_view queue_reject_label(QueueReject r);

/// One route's counters on one thread.
struct alignas(64) RouteCounters {
  std::array<std::array<Counter, kStatusClasses>, kProtocols> requests;
  std::array<Counter, kQueueRejects> rejected;
  Histogram duration;  ///< first byte of the request → response complete
  Histogram queue;     ///< waiting for a worker
  Histogram upstream;  ///< request sent to the worker → response complete from it
  /// Responses the proxy compressed ([0] gzip, [1] br), and their body bytes before and after.
  std::array<Counter, 2> compressed;
  Counter compress_bytes_in, compress_bytes_out;
};

/// One app's tunnel bytes on one thread: client → worker (up) and worker → client (down).
/// Kept by the app's AppDispatcher, so they count per app for as long as the app exists,
/// whichever routes (or static fallbacks) its tunnels came through.
struct alignas(64) TunnelBytes {
  Counter up, down;
};

/// A block of per-thread copies of T.
template <typename T>
class PerThread {
 public:
  explicit PerThread(size_t threads) : n_(threads ? threads : 1), blocks_(std::make_unique<T[]>(n_)) {}
  T& at(size_t thread) noexcept { return blocks_[thread < n_ ? thread : 0]; }
  const T& at(size_t thread) const noexcept { return blocks_[thread < n_ ? thread : 0]; }
  size_t size() const { return n_; }

 private:
  size_t n_;
  std::unique_ptr<T[]> blocks_;
};

/// The counters of one [[route]] (labels app and route), shared by every loop.
struct RouteMetrics {
  RouteMetrics(std::string app_name, std::string route_label, size_t threads)
      : app(std::move(app_name)), route(std::move(route_label)), counters(threads) {}
  std::string app;
  std::string route;  ///< "HOST/PATH" or "/PATH" when the route has no host
  PerThread<RouteCounters> counters;
};

/// Why a TLS handshake failed (label "reason").
enum class TlsFailure : uint8_t { Timeout = 0, ClosedByClient, Protocol, NoSharedCipher, Version, Certificate, Other };
inline constexpr size_t kTlsFailures = 7;
std::string_view tls_failure_label(TlsFailure f);

/// Connection protocol once known (label "protocol"); Pending = TLS handshake or first bytes.
enum class ConnProtocol : uint8_t { Pending = 0, Http1 = 1, Http2 = 2 };
inline constexpr size_t kConnProtocols = 3;
std::string_view conn_protocol_label(ConnProtocol p);

/// One listener's counters on one thread.
struct alignas(64) ListenerCounters {
  Counter accepted;
  std::array<Level, kConnProtocols> open;  ///< open connections by protocol
  Counter tls_handshakes;                  ///< completed
  std::array<Counter, kTlsFailures> tls_failures;
  Counter bytes_in, bytes_out;
  /// Connections refused: [0] max_connections, [1] max_connections_per_client (reset when
  /// accepted, or after the PROXY header named the client), [2] proxy_protocol_untrusted
  /// (a peer outside proxy_protocol_trusted, reset unread), [3] proxy_protocol_invalid (a
  /// missing, malformed or late PROXY header).
  std::array<Counter, 4> refused;
};

/// The counters of one listener (label "listener" = its configured address).
struct ListenerMetrics {
  ListenerMetrics(std::string address, size_t threads) : listener(std::move(address)), counters(threads) {}
  std::string listener;
  PerThread<ListenerCounters> counters;
};

/// HTTP/2 error codes 0x0..0xd have their own slot; anything else counts as "unknown".
inline constexpr size_t kH2Errors = 15;
size_t h2_error_index(uint32_t code);
std::string_view h2_error_label(size_t index);

/// A request refused before it was given to an app, with the parser's or the limit's reason.
/// The reasons are static strings (the parser's error texts and the proxy's limit names);
/// each distinct pointer gets a slot, looked up linearly (only on the error path).
struct RejectSlot {
  std::atomic<const char*> reason{nullptr};  ///< published after status
  std::atomic<int> status{0};
  std::array<Counter, kProtocols> count;
};
inline constexpr size_t kRejectSlots = 96;

/// Counters that belong to a loop thread and to no app or listener.
struct alignas(64) LoopCounters {
  std::array<RejectSlot, kRejectSlots> rejects;
  Counter rejects_overflow;  ///< reasons beyond kRejectSlots (never expected)
  Counter h2_streams;        ///< HTTP/2 streams opened by clients
  Counter bodies_spilled;      ///< request bodies that went to a temp file
  Counter body_spilled_bytes;  ///< bytes written to request-body temp files
  Counter body_temp_errors;    ///< temp files that could not be made or written (answered 500)
  Counter bodies_streamed;     ///< request bodies streamed to a worker (request_buffering = false)
  Counter accept_pauses;       ///< accepting paused for a back-off (EMFILE, ENFILE, ENOBUFS, ENOMEM)
  Counter connections_adopted;  ///< idle connections taken over from a retiring proxy (restart-proxy)
  Counter access_log_dropped;  ///< access-log lines that could not be written (disk full, ...)
  std::array<Counter, kH2Errors> goaway_sent, goaway_received, rst_sent, rst_received;
  std::atomic<size_t> reject_slots_used{0};

  /// Counts a refused request; `reason` must be a string literal (or live forever).
  void reject(const char* reason, int status, Protocol p) noexcept;
};

/// "bare LF in header block" → "bare_lf_in_header_block": the reason's stable label.
std::string reason_label(std::string_view reason);

/// Prometheus text format helpers.
/// Escapes a label value (backslash, double quote, newline).
void append_label_value(std::string& out, std::string_view v);
/// A sample value: integers as integers, others with enough digits.
void append_value(std::string& out, double v);
void append_value(std::string& out, uint64_t v);

}  // namespace corral::proxy::metrics
