#pragma once
// The closed set of typed messages on the supervisor <-> proxy control channel.
// Wire format: one SEQPACKET record per message, a JSON object
// {"v":1,"type":"<name>",...fields}; file descriptors ride along as SCM_RIGHTS.
// See PROTOCOL.md for direction, fds and ordering rules. Pure functions; thread-safe.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/base/result.h"

namespace corral::control {

inline constexpr int kProtocolVersion = 1;

// ---- supervisor → proxy ----

/// The complete listener set. fds attached in the same order as addresses; the proxy
/// starts accepting on new ones and closes those no longer listed.
struct SetListeners {
  std::vector<std::string> addresses;  ///< the bound address of each fd, for logs and status
  /// The admin listener's bound address ("" = none). When set, its fd is attached after the
  /// fds of `addresses` (optional on decode).
  std::string admin;
};

/// The access log file `path` (a path of the config's [proxy] access_log), opened by the
/// supervisor (O_APPEND, before set_config, and again on SIGUSR1): one fd attached. The proxy
/// writes to it and never opens the path itself, which it may not be allowed to (the packaged
/// service's /var/log/corral is root's).
struct AccessLogFile {
  std::string path;
};

/// A validated configuration (conf::snapshot encoding, opaque here).
struct SetConfig {
  uint64_t generation = 0;
  std::string snapshot;
};

/// One worker slot the proxy may send requests to.
struct SlotInfo {
  std::string app;
  int slot = 0;              ///< slot index within the app, stable across restarts
  uint64_t generation = 0;   ///< bumps every time the slot's process is replaced
  std::string path;          ///< Unix socket path
  int concurrency = 1;
  bool accepting = true;     ///< false: draining, finish what is in flight, send nothing new
  int pid = 0;
  uint64_t max_requests = 0; ///< report slot_event max_requests once this many were sent; 0 = never
};

/// The full pool; replaces the previous one. Slots that disappear are drained by the proxy.
struct SetPool {
  std::vector<SlotInfo> slots;
  /// Apps whose workers keep failing to start and that have none up: answer 503 at once
  /// instead of queueing.
  std::vector<std::string> failing;
};

/// Which requests is (or was, until it died) this slot serving? Asked for a worker's
/// death record; the proxy answers SlotRequests with the same `query`.
struct SlotRequestsQuery {
  uint64_t query = 0;
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
};

/// Asks for the proxy's counters now (a status request wants live figures): the proxy
/// answers ProxyStats with the same `query`.
struct StatsQuery {
  uint64_t query = 0;
};

/// Drain (corralctl drain, or the first part of a stop with drain_delay): while `draining`
/// the proxy's /readyz answers 503 "draining", HTTP/1.1 responses carry Connection: close
/// and HTTP/2 connections get GOAWAY; the listeners keep accepting and serving. `false`
/// (corralctl undrain) serves as before. Sent again after every proxy (re)start while on.
struct SetDraining {
  bool draining = false;
};

/// What the supervisor knows about the workers (state, PSS, CPU, exits by reason, recent
/// death records), for the proxy's /metrics and /status. Sent every second while the proxy
/// runs. `json` is a JSON object {"apps": [...]} with each app as GET /status shows it
/// (opaque here; proxy/admin reads it).
struct WorkerFigures {
  std::string json;
};

/// One idle client connection moving from a retiring proxy to its successor (its fd rides
/// along, in the same position). Plaintext only, never with bytes read and not yet used.
struct HandedConnection {
  std::string listener;      ///< the accepting listener's bound address (as in SetListeners)
  std::string client;        ///< the client's IP (from the PROXY header on such a listener)
  int client_port = 0;       ///< 0 = unknown (the adopting proxy asks the socket)
  int server_port = 0;       ///< the port the client connected to (the balancer's, behind PROXY)
  uint64_t idle_ms = 0;      ///< keep-alive time left: the adopting proxy closes it after this
  bool fresh = false;        ///< accepted, first request not read yet (else: parked between requests)
};

/// Stop accepting and leave (make-before-break replacement): drop the listening sockets
/// (never shutdown(), they are shared with the successor), hand idle plaintext keep-alive
/// connections over (HandoffConnections), end the others after their current request,
/// exit when none is left or at graceful_timeout.
struct Retire {};

/// The supervisor passes connections a retiring proxy handed over to the serving one.
struct AdoptConnections {
  std::vector<HandedConnection> connections;  ///< at most net::kMaxFds, one fd each
};

// ---- proxy → supervisor ----

/// A retiring proxy's idle connections (one fd each, at most net::kMaxFds per message);
/// `last` marks the final batch, with `kept`: connections it still serves until they end.
struct HandoffConnections {
  std::vector<HandedConnection> connections;
  bool last = false;
  uint64_t kept = 0;
};

/// The proxy has applied config `generation` (and the listeners and pool sent before it).
struct ProxyReady {
  uint64_t config_generation = 0;
};

/// A request passed its app's timeout on this worker: the supervisor should replace it.
struct WorkerHung {
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
  std::string request_id;
};

/// Per-slot counters inside ProxyStats.
struct SlotStats {
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
  uint64_t in_flight = 0;
  uint64_t requests = 0;  ///< sent to this slot's current process since the proxy started
};

/// Per-app totals inside ProxyStats: cumulative since the proxy (or the app's dispatcher)
/// started, so a reader takes differences between two reports.
struct AppStats {
  std::string app;
  uint64_t requests = 0;        ///< requests a worker finished (any status; not the connect failures)
  uint64_t busy_us = 0;         ///< sum of lease times (granted → released): worker wall time per request
  uint64_t queue_us = 0;        ///< sum of queue waits (queued → granted or left) of the requests that queued
  uint64_t queued = 0;          ///< requests that waited in the queue (counted when they leave it)
  uint64_t rejected = 0;        ///< 503 without a worker: queue full, no workers, queue_timeout
  uint64_t peak_in_flight = 0;  ///< the most leases out at once
};

/// Counters the proxy reports periodically and on request.
struct ProxyStats {
  uint64_t requests = 0;
  uint64_t in_flight = 0;
  uint64_t queued = 0;
  uint64_t connections = 0;
  std::vector<SlotStats> slots;  ///< optional on decode
  uint64_t query = 0;            ///< the StatsQuery this answers; 0 = periodic (optional on decode)
  std::vector<AppStats> apps;    ///< optional on decode
};

/// Something happened to one slot that the supervisor acts on.
struct SlotEvent {
  enum class Kind {
    Drained,      ///< not accepting and nothing in flight any more: safe to stop
    MaxRequests,  ///< it was sent its SlotInfo::max_requests-th request
    Refused,      ///< a connect to its socket failed at once (at most once per second per slot)
  };
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
  Kind kind = Kind::Drained;
  uint64_t requests = 0;
};

/// One request in a SlotRequests answer.
struct SlotRequestInfo {
  std::string id;       ///< the request id (X-Request-Id, access log rid)
  std::string method;
  std::string path;     ///< request target (possibly cut)
  uint64_t elapsed_ms = 0;
  std::string state;    ///< "in_flight", "failed" (connection to the worker broke), "timed_out" (504)
  std::string trace_id; ///< W3C trace-id (traceparent); optional on the wire, empty when absent
};

/// The answer to SlotRequestsQuery: requests in flight on the slot, then those that failed
/// on it in the last few seconds.
struct SlotRequests {
  uint64_t query = 0;
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
  std::vector<SlotRequestInfo> requests;
};

using Message = std::variant<SetListeners, AccessLogFile, SetConfig, SetPool, ProxyReady, WorkerHung, ProxyStats, SlotEvent,
                             SlotRequestsQuery, SlotRequests, StatsQuery, WorkerFigures, SetDraining, Retire,
                             AdoptConnections, HandoffConnections>;

/// The "type" string of a message, e.g. "set_pool".
std::string_view type_name(const Message& m);

/// Never fails: bytes in strings that are not UTF-8 are sent as U+FFFD.
std::string encode(const Message& m);
/// Rejects unknown types, a different major version, missing or mistyped fields.
[[nodiscard]] Result<Message> decode(std::string_view bytes);

}  // namespace corral::control
