#pragma once
// `corralctl advise`: from two GET /status snapshots taken a window apart (plus in-flight
// samples taken in between), the figures that decide an app's capacity and a recommendation
// for `workers`, `concurrency` and, for WSGI apps, `worker_class`, with its reasons in plain
// words. Pure: no I/O, no clock; corralctl takes the snapshots and prints the result.
//
// The figures, per app, over the window W (differences of the cumulative `totals`):
//   requests/s               = requests / W
//   CPU per request          = cpu_seconds / requests        (the workers' CPU, all of it)
//   CPU wait per request     = cpu_wait_seconds / requests   (runnable, waiting for a core)
//   wall per request         = busy_seconds / requests       (a worker held, grant → release)
//   CPU-bound share s        = (CPU + CPU wait) / wall       (the time a request wanted a core;
//                              counting the wait keeps a machine busy with other work from
//                              making a CPU-bound app look like one that waits on I/O)
//   concurrency used U       = busy_seconds / W              (Little's law: requests being served)
//   waiting Q                = queue_seconds / W             (requests in the queue, on average)
//   demand D                 = U + Q                         (requests the clients had in the app)
//   CPU demand K             = D × s cores                   (what serving D at once would take)
// and the host's usable cores C (affinity and cgroup quota) and available memory.
//
// The reasoning (WSGI; see recommend() in advise.cc for the other kinds):
//   - A Python process runs one thread at a time (the GIL): it uses at most one core.
//     A CPU-bound app (s ≥ 0.5) scales with processes: about C/s of them (C + 1 when s ≈ 1,
//     at most 2C + 1), one thread each ("sync").
//   - An app that mostly waits (s < 0.5) scales with threads: ceil(1/s) threads fill one
//     core (at most 32), and enough processes to carry the CPU demand K (at most C + 1).
//     Threads and processes together cover the demand with 25 % headroom.
//   - Very IO-bound (s < 0.1) with more waiting requests than 32 threads per process hold:
//     "gevent" (greenlets; the app's libraries must cooperate), when gevent is installed.
//   - Never fewer request slots than the concurrency actually used; at least one process.
//   - Memory: workers × PSS per worker must fit in 80 % of MemAvailable plus what the app
//     uses now (a change that starts a new generation runs next to the old one for a
//     moment, so then 80 % of MemAvailable alone); otherwise fewer processes (and more
//     threads where they help).
//   - No queueing, no rejections and under 70 % of the slots used: the current setting is
//     adequate (fewer workers may be suggested to save memory).
//   - No request in the window: no recommendation.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace corral::supervisor {

/// One app in a GET /status snapshot, as the advisor reads it.
struct AppSnapshot {
  std::string name;
  std::string kind;          ///< "http", "fastcgi", "cgi", "wsgi"
  std::string worker_class;  ///< wsgi: "sync", "gthread", "gevent"; else empty
  int workers = 1;           ///< desired count
  int concurrency = 1;       ///< per worker
  int running = 0;           ///< workers with a process
  uint64_t pss_bytes = 0;    ///< summed over the running workers
  uint64_t in_flight = 0;
  bool removed = false;
  // `totals`: cumulative.
  uint64_t requests = 0;
  double busy_seconds = 0;
  double queue_seconds = 0;
  uint64_t queued = 0;
  uint64_t rejected = 0;
  double cpu_seconds = 0;
  double cpu_wait_seconds = 0;
  uint64_t peak_in_flight = 0;
  // Workers whose readiness probe passed (their PSS is the app's, loaded).
  int ready = 0;
  uint64_t ready_pss_bytes = 0;
};

/// A GET /status snapshot, as the advisor reads it.
struct StatusSnapshot {
  int usable_cores = 1;
  uint64_t mem_available_bytes = 0;
  uint64_t mem_total_bytes = 0;
  std::vector<AppSnapshot> apps;

  const AppSnapshot* app(const std::string& name) const;
};

/// Reads the fields above from a GET /status body; missing fields keep their defaults
/// (an older supervisor without `totals` gives zeros, hence "no data"). Pure.
StatusSnapshot parse_status(const nlohmann::json& status);

/// In flight per app at one moment of the window (from a status sample).
using InFlightSample = std::map<std::string, uint64_t>;

struct AdviseOptions {
  bool gevent_available = true;  ///< gevent can be imported by the workers' Python
  int max_threads = 32;          ///< threads per process at most
  int max_greenlets = 1000;      ///< gevent concurrency per process at most
  double memory_share = 0.8;     ///< of MemAvailable a recommendation may take
};

/// The figures measured over the window.
struct Measured {
  double window_seconds = 0;
  uint64_t requests = 0;
  double requests_per_second = 0;
  double cpu_per_request = 0;      ///< seconds
  double cpu_wait_per_request = 0; ///< seconds runnable but waiting for a core
  double wall_per_request = 0;     ///< seconds
  double cpu_share = 0;            ///< s, clamped to [0, 1]
  double concurrency_used = 0;     ///< U
  double waiting = 0;              ///< Q
  double demand = 0;               ///< D = U + Q
  double cpu_demand_cores = 0;     ///< K = D × s
  double cores_used = 0;           ///< CPU seconds / W
  uint64_t queued = 0;
  double queue_wait_mean = 0;      ///< seconds, per request that queued
  uint64_t rejected = 0;
  uint64_t peak_in_flight = 0;
  uint64_t pss_per_worker = 0;     ///< bytes (0 = unknown)
};

/// workers, concurrency, worker_class: what runs now or what is recommended.
struct Capacity {
  int workers = 1;
  int concurrency = 1;
  std::string worker_class;  ///< wsgi only

  bool operator==(const Capacity&) const = default;
};

struct AppAdvice {
  enum class Verdict {
    NoData,    ///< no request finished in the window: no recommendation
    Adequate,  ///< the current setting carries this load
    Change,    ///< `recommended` differs from `current`
    AtLimit,   ///< requests queue, but the host (cores or memory) allows no better setting
  };
  std::string app;
  std::string kind;
  Verdict verdict = Verdict::NoData;
  Measured measured;
  Capacity current;
  Capacity recommended;                 ///< == current unless verdict is Change
  std::optional<int> fewer_workers;     ///< Adequate: this many would still do (saves memory)
  uint64_t memory_now_bytes = 0;        ///< current workers × PSS
  uint64_t memory_recommended_bytes = 0;
  uint64_t memory_budget_bytes = 0;     ///< what the recommendation was allowed to use
  int usable_cores = 1;
  uint64_t mem_available_bytes = 0;
  std::vector<std::string> reasons;     ///< plain sentences with the figures
};

/// "no_data", "adequate", "change", "at_limit".
const char* verdict_name(AppAdvice::Verdict v);

/// The advice for every app present in both snapshots (or only `only_app` when not empty;
/// an unknown name gives an empty result). window_seconds > 0. Pure.
std::vector<AppAdvice> advise(const StatusSnapshot& start, const StatusSnapshot& end, double window_seconds,
                              const std::vector<InFlightSample>& samples, const AdviseOptions& options,
                              const std::string& only_app = "");

/// {"app", "kind", "verdict", "measured": {...}, "current": {...}, "recommended": {...},
///  "fewer_workers", "memory": {...}, "host": {...}, "reasons": [...]}
nlohmann::json to_json(const AppAdvice& a);
/// The human-readable report of one app (several lines).
std::string to_text(const AppAdvice& a);
/// The corral.toml lines that make the recommendation permanent ("[app.NAME]\nworkers = 3\n...").
std::string toml_lines(const AppAdvice& a);

}  // namespace corral::supervisor
