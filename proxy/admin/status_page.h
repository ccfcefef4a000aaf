#pragma once
// The admin listener's live status: /status.json (built here from the proxy's own state and
// the supervisor's worker figures) and /status (one self-contained HTML page, embedded in
// the binary at build time from status_page.html, that polls /status.json every second).
//
// /status.json:
//   {"version", "generation", "now_ms", "started_ms", "ready", "not_ready", "stopping",
//    "listeners": [{"address", "tls"}], "routes": [{"host", "path", "app"}],
//    "apps": [{"name", "kind", "queued", "in_flight", "requests", "errors",
//              "workers": [{"id", "pid", "generation", "state", "in_flight", "requests", "rss",
//                           "cpu_seconds", "uptime_seconds", "restarts"}],
//              "exits": {reason: n}, "recent_deaths": [supervisor death records, newest first]}],
//    "series": {app: [{"t", "rate", "errors", "p50", "p90", "p99", "queued", "in_flight"}]},
//    "figures_age_ms": ms or null}
// Per app, queued and in flight (also per worker) are the dispatcher's live values; the
// workers' other figures, exits and recent_deaths are the supervisor's (worker_figures).
//
// Pure functions of their inputs; thread-safe.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "proxy/runtime.h"

namespace corral::proxy {

class AdminService;

/// One second of one app in the status series.
struct StatusSample {
  int64_t t_ms = 0;     ///< end of the second, milliseconds since the epoch
  double rate = 0;      ///< requests answered per second
  double errors = 0;    ///< 5xx answers per second
  double p50 = 0, p90 = 0, p99 = 0;  ///< response time percentiles, seconds
  uint64_t queued = 0;     ///< waiting for a worker at the end of the second
  uint64_t in_flight = 0;  ///< at a worker at the end of the second
};

/// Requests and 5xx answers of one app since the proxy started.
struct AppTotals {
  uint64_t requests = 0;
  uint64_t errors = 0;
};

/// What /status.json shows besides the Runtime snapshot.
struct StatusInputs {
  int64_t now_ms = 0;
  int64_t started_ms = 0;  ///< when the proxy started
  bool ready = false;
  std::string not_ready;   ///< why not ready ("" when ready)
  bool stopping = false;
  bool draining = false;  ///< drain announced, the listeners still serve
  /// The supervisor's worker figures ({"apps": [AppPool::status()...]}); null = none yet.
  const nlohmann::json* figures = nullptr;
  std::optional<int64_t> figures_age_ms;  ///< nullopt = none received yet
  std::map<std::string, AppTotals> totals;  ///< by app; an app missing here shows 0
  std::map<std::string, std::vector<StatusSample>> series;  ///< by app, oldest first
};

/// The /status.json body. Only samples newer than `since_ms` are included (0 = all): the
/// page asks for what it has not seen yet (`/status.json?since=T`).
std::string status_json(const StatusInputs& in, const Runtime& rt, int64_t since_ms = 0);
/// The same from the admin service: its readiness, start time, worker figures, per-app
/// totals and StatusHistory series.
std::string status_json(const AdminService& admin, const Runtime& rt, int64_t since_ms = 0);

/// `since` from a /status.json target's query ("/status.json?since=123" → 123); 0 when
/// absent or not a number.
int64_t status_since(std::string_view target);

/// The /status page (UTF-8 HTML; its script and style are inline).
std::string_view status_page_html();
/// The Content-Security-Policy of the page: nothing but its own inline script and style
/// (allowed by their SHA-256 hashes) and fetches to its own origin.
std::string_view status_page_csp();

}  // namespace corral::proxy
