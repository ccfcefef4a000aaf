#pragma once
// What frontend sessions and their exchanges need from the loop that owns them.
// Implemented by LoopThread (and by test fixtures). Loop-affine: every method is called on
// the owning loop thread.
#include <memory>
#include <string>
#include <string_view>

#include "common/ev/loop.h"
#include "proxy/access_log.h"
#include "proxy/forwarding_headers.h"
#include "proxy/metrics/metrics.h"
#include "proxy/runtime.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {

class AdminService;
class ClientConnection;
class Http1Session;

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual ev::Loop& loop() = 0;
  /// The current snapshot (never null once the loop accepts connections).
  virtual const std::shared_ptr<const Runtime>& runtime() const = 0;
  virtual UpstreamPool& pool() = 0;
  virtual RequestIdGenerator& request_ids() = 0;
  /// One access-log record (the host formats and writes it).
  virtual void log_access(const AccessRecord& r) = 0;
  /// A request passed its app's timeout on this worker.
  virtual void report_hung(const std::string& app, int slot, uint64_t generation, std::string_view request_id) = 0;
  /// True after SIGTERM: no new keep-alive rounds, HTTP/2 sends GOAWAY.
  virtual bool draining() const = 0;
  /// True while the process drains before a stop or for maintenance (SetDraining): the
  /// listeners still serve, but HTTP/1.1 responses end their connection (Connection: close)
  /// and HTTP/2 connections are sent GOAWAY, so clients move to other hosts.
  virtual bool drain_announced() const { return false; }
  /// ":PORT" of the first TLS listener as bound (for redirect_https), "" when it is 443 or
  /// there is none.
  virtual std::string https_port() const { return {}; }
  /// This loop's index (selects its copy of per-thread counters).
  virtual size_t thread_index() const { return 0; }
  /// This loop's own counters (null in test fixtures).
  virtual metrics::LoopCounters* counters() { return nullptr; }
  /// The admin listener's service (null when none).
  virtual const AdminService* admin() const { return nullptr; }
  /// The connection is finished; the host destroys it later (outside its callbacks).
  virtual void connection_closed(ClientConnection* c) = 0;
  /// HTTP/1.1 sessions outlive their connections: a keep-alive connection that stays idle
  /// gives its session back (it parks) and takes one again with its next request, so an
  /// idle connection holds only its socket watch. take: a spare session, or null (make one).
  virtual std::unique_ptr<Http1Session> take_http1_session() = 0;
  /// A detached session (its connection parked or closed). May be called from inside the
  /// session's own callbacks: the host keeps or destroys it later, never during the call.
  virtual void give_back_http1_session(std::unique_ptr<Http1Session> s) = 0;
};

}  // namespace corral::proxy
