#pragma once
// The recent death records of one app's workers, as data: what GET /status shows as
// "recent_deaths" (and the proxy's /status page after it). AppPool adds one record per
// worker exit, expected or not, with the same facts its death-record log line gives; the
// requests the worker was serving arrive later (the proxy answers a query) and complete the
// record. The newest kCapacity records are kept. Loop-affine (the supervisor's loop).
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/control/messages.h"

namespace corral::supervisor {

/// One worker exit.
struct DeathRecord {
  int64_t time_ms = 0;           ///< when it was reaped, milliseconds since the epoch
  int worker = 0;                ///< worker id
  pid_t pid = 0;
  uint64_t generation = 0;       ///< the app's config generation the worker ran
  uint64_t incarnation = 0;      ///< the worker's process incarnation
  std::string reason;            ///< exit, signal, oom, timeout, boot_timeout, stop, reload, scale, max_requests, max_rss
  std::string exit;              ///< describe_exit(): "exit code 3", "killed by signal 9 (SIGKILL)"
  bool expected = false;         ///< the supervisor asked it to go (stop, reload, scale, recycle); false: crash, oom, hung, failed boot
  double uptime_seconds = 0;
  uint64_t requests = 0;         ///< sent to this incarnation (the proxy's counters)
  uint64_t in_flight = 0;        ///< in flight at the last counters
  /// What the proxy says it was serving (in flight, then failed or timed out on it);
  /// nullopt while the answer is pending or when the proxy did not answer.
  std::optional<std::vector<control::SlotRequestInfo>> serving;
  uint64_t serving_omitted = 0;  ///< requests it was serving beyond DeathLog::kMaxRequests
  std::string line;              ///< the death-record log line (without the tag)
  /// Processes it left running that the supervisor killed ("pid 812 (sleep 600), ..."); empty: none.
  std::string leftovers;
};

class DeathLog {
 public:
  static constexpr size_t kCapacity = 20;
  /// A record keeps at most this many of the requests the worker was serving, and its line
  /// at most kMaxLine bytes (the log has it whole): the records travel to the proxy every
  /// second inside one control message.
  static constexpr size_t kMaxRequests = 10;
  static constexpr size_t kMaxLine = 1024;

  /// Adds a record (evicting the oldest past kCapacity); returns its id for complete().
  uint64_t add(DeathRecord r);
  /// Fills in what the proxy answered and the final log line of record `id`. Does nothing
  /// when the record was evicted meanwhile.
  void complete(uint64_t id, std::optional<std::vector<control::SlotRequestInfo>> serving, std::string line);

  /// Notes the processes the worker `pid` left behind on its newest record. Does nothing
  /// when there is none (evicted).
  void note_leftovers(pid_t pid, const std::string& leftovers);

  /// Newest first.
  nlohmann::json json() const;
  /// The records (oldest first, as to_json() gives them) for a new supervisor image, and
  /// back (upgrade in place). restore() replaces what is there; records it cannot read
  /// are skipped.
  nlohmann::json state() const;
  void restore(const nlohmann::json& records);
  size_t size() const { return records_.size(); }

 private:
  struct Entry {
    uint64_t id;
    DeathRecord record;
  };
  std::deque<Entry> records_;  // oldest first
  uint64_t next_id_ = 0;
};

/// {"time_ms", "worker", "pid", "generation", "incarnation", "reason", "exit", "expected",
/// "uptime_seconds", "requests", "in_flight", "in_flight_requests": [{"id", "trace_id", "method",
/// "path", "elapsed_ms", "state"}] or null (no answer from the proxy),
/// "in_flight_requests_omitted", "line", "leftovers" (only when it left processes behind)}.
nlohmann::json to_json(const DeathRecord& r);

}  // namespace corral::supervisor
