#pragma once
// The admin listener's answers ([proxy] admin): /metrics (Prometheus text format),
// /healthz, /readyz, /status and /status.json. Requests on the admin listener never reach a
// worker: the Exchange asks handle() and frames the answer like a worker's.
//
// Thread-safe: handle() runs on whichever loop accepted the connection; the figures it reads
// are per-thread counters (proxy/metrics), dispatchers (their own mutex) and the latest
// worker figures from the supervisor (under this object's mutex).
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/metrics/metrics.h"
#include "proxy/runtime.h"

namespace corral::proxy {

class StatusHistory;

/// A response produced by the proxy itself.
struct LocalResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra fields
};

class AdminService {
 public:
  AdminService();
  ~AdminService();

  /// The loops' own counters, in loop order; set once before the loops start.
  void set_loops(std::vector<const metrics::LoopCounters*> loops);
  /// Worker figures from the supervisor (control::WorkerFigures). Any thread.
  void set_worker_figures(std::string json);
  /// The process is stopping: /readyz fails from now on. Any thread.
  void set_stopping() { stopping_.store(true); }
  bool stopping() const { return stopping_.load(); }
  /// Drain announced (control::SetDraining): /readyz fails with "draining" while the
  /// listeners keep serving. Any thread.
  void set_draining(bool on) { draining_.store(on); }
  bool draining() const { return draining_.load(); }
  /// When the proxy started (this object was made).
  std::chrono::system_clock::time_point started() const { return started_; }
  /// The current snapshot (for the status sampler and requests without one). Any thread.
  void set_runtime(std::shared_ptr<const Runtime> rt);
  std::shared_ptr<const Runtime> runtime() const;

  /// Answers one admin request. `rt` is the snapshot the request started with.
  LocalResponse handle(std::string_view method, std::string_view target, const Runtime& rt) const;

  /// The Prometheus text exposition of everything the proxy counts.
  std::string render_metrics(const Runtime& rt) const;
  /// Empty when ready; else why not (one line per reason).
  std::string not_ready_reasons(const Runtime& rt) const;

  /// Sums of the route counters of `rt` over every thread (for the status sampler).
  struct AppTotals {
    std::string app;
    uint64_t requests = 0;
    uint64_t errors = 0;  ///< 5xx
    metrics::HistogramTotals duration;
    uint64_t queued = 0;  ///< waiting now
    uint64_t in_flight = 0;
  };
  std::vector<AppTotals> app_totals(const Runtime& rt) const;
  /// The latest worker figures (null before the first arrives).
  std::shared_ptr<const nlohmann::json> worker_figures() const;
  std::chrono::steady_clock::time_point worker_figures_time() const;

  /// The status page's time series; owned here so any loop can read it.
  StatusHistory& history() { return *history_; }
  const StatusHistory& history() const { return *history_; }

 private:
  std::vector<const metrics::LoopCounters*> loops_;
  mutable std::mutex mu_;
  std::shared_ptr<const nlohmann::json> figures_;
  std::chrono::steady_clock::time_point figures_at_{};
  std::shared_ptr<const Runtime> runtime_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> draining_{false};
  std::unique_ptr<StatusHistory> history_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
};

/// The status page's per-second samples over the last minutes. Thread-safe.
class StatusHistory {
 public:
  struct Point {
    int64_t t_ms = 0;  ///< wall clock, ms since the epoch
    double rate = 0;   ///< requests per second over the step
    double errors = 0;  ///< 5xx per second
    double p50 = 0, p90 = 0, p99 = 0;  ///< seconds, over the step
    uint64_t queued = 0;
    uint64_t in_flight = 0;
  };
  static constexpr size_t kPoints = 300;  ///< five minutes at one per second

  /// Takes one sample of `totals` (cumulative); the point is the difference with the last.
  void sample(const std::vector<AdminService::AppTotals>& totals, std::chrono::system_clock::time_point now);
  /// Per app, oldest first.
  std::vector<std::pair<std::string, std::vector<Point>>> series() const;

 private:
  struct Series {
    std::vector<Point> points;  // ring of kPoints
    size_t next = 0;
    bool full = false;
    AdminService::AppTotals last;
    std::chrono::system_clock::time_point last_at{};
  };
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, Series>> apps_;
};

}  // namespace corral::proxy
