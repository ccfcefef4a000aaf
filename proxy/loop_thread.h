#pragma once
// One event loop on its own thread with everything it owns: accepted connections,
// the upstream connection pool, timers, listener watches, and the current Runtime snapshot.
// Other threads talk to it only through the thread-safe methods below (they post to the
// loop). Implements SessionHost for its sessions.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/control/messages.h"
#include "common/ev/loop.h"
#include "proxy/access_log.h"
#include "proxy/admin/admin.h"
#include "proxy/forwarding_headers.h"
#include "proxy/client_connection.h"
#include "proxy/connection_limiter.h"
#include "proxy/listener.h"
#include "proxy/runtime.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {

/// What all loops share with the control thread. Callbacks are invoked on loop threads and
/// must be thread-safe.
struct LoopShared {
  std::shared_ptr<AccessLog> access_log;  ///< may be null (off)
  RequestIdGenerator request_ids;
  /// A request timed out on a worker (called on the loop thread).
  std::function<void(const std::string& app, int slot, uint64_t generation, std::string request_id)> on_hung;
  /// The loop finished draining (no connections left) after begin_drain().
  std::function<void(int index)> on_drained;
  /// Answers the admin listener (null: no admin listener yet).
  std::shared_ptr<const AdminService> admin;
};

class LoopThread : public SessionHost {
 public:
  LoopThread(int index, LoopShared& shared);
  ~LoopThread() override;
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  /// Starts the thread (the loop runs until stop()).
  void start();
  /// Breaks the loop and joins the thread. Connections are closed abruptly.
  void stop();

  // Thread-safe: each posts to the loop.
  void set_runtime(std::shared_ptr<const Runtime> rt);
  void set_listeners(std::shared_ptr<const ListenerSet> ls);
  void retain_upstreams(std::shared_ptr<const std::vector<std::pair<std::string, uint64_t>>> live);
  void set_access_log(std::shared_ptr<AccessLog> log);
  /// Stop accepting; close idle connections; close the others after their response.
  /// The admin listener keeps accepting (its /readyz answers 503).
  void begin_drain();
  /// Drain announced (on) or withdrawn (off) while the listeners keep serving: from now on
  /// HTTP/1.1 responses carry Connection: close and HTTP/2 connections get GOAWAY.
  void set_drain_announced(bool on);
  /// Make-before-break (proxy/retire.cc): a successor accepts on the same sockets. Stops
  /// watching the listeners and lets go of this loop's copy of the set (never shutdown():
  /// the sockets are shared); idle plaintext HTTP/1.1 connections (parked between requests,
  /// or accepted with no byte read yet) leave for `done`; the others end after what is in
  /// flight (HTTP/1.1 with Connection: close, HTTP/2 with the notice + PING + GOAWAY pair;
  /// an idle TLS one gets kFirstRequestGraceOnDrain for a request on its way, then closes).
  /// `done` runs on this loop with those connections and the number still open. The loop
  /// reports on_drained once none is left.
  void retire(std::function<void(std::vector<HandedOff>&&, size_t kept)> done);
  /// Takes over an idle connection a retiring proxy handed over, accepted on the listener
  /// at `listener_index` (plaintext only; counted under its limits like an accepted one).
  void adopt_handed(UniqueFd fd, control::HandedConnection info, size_t listener_index);

  /// Loop-affine: takes over an accepted connection from the listener at `listener_index`
  /// (its TLS and HTTP/2 settings apply; tests use it with a socketpair end). `slot` is the
  /// place the connection holds in its listener's counts (see accept_client()). A nonzero
  /// `local_port` gives both ports (else the connection looks them up if it needs them).
  void adopt(UniqueFd fd, std::string client_ip, size_t listener_index = SIZE_MAX, ConnectionSlot slot = {},
             uint16_t client_port = 0, uint16_t local_port = 0);
  /// Loop-affine.
  size_t connection_count() const { return connection_count_; }
  /// Loop-affine: connections waiting without a session, and sessions kept for reuse.
  size_t parked_count() const;
  size_t spare_session_count() const { return spare_sessions_.size(); }

  // SessionHost
  ev::Loop& loop() override { return loop_; }
  const std::shared_ptr<const Runtime>& runtime() const override { return runtime_; }
  UpstreamPool& pool() override { return pool_; }
  RequestIdGenerator& request_ids() override { return shared_.request_ids; }
  void log_access(const AccessRecord& r) override;
  void report_hung(const std::string& app, int slot, uint64_t generation, std::string_view request_id) override;
  bool draining() const override { return draining_; }
  bool drain_announced() const override { return drain_announced_; }
  void connection_closed(ClientConnection* c) override;
  std::unique_ptr<Http1Session> take_http1_session() override;
  void give_back_http1_session(std::unique_ptr<Http1Session> s) override;
  std::string https_port() const override;
  size_t thread_index() const override { return static_cast<size_t>(index_); }
  metrics::LoopCounters* counters() override { return &counters_; }
  const AdminService* admin() const override { return shared_.admin.get(); }
  /// Any thread: the counters are read with relaxed loads (see proxy/metrics).
  const metrics::LoopCounters& counters_view() const { return counters_; }

 private:
  void reap();
  void schedule_reap();
  void link(ClientConnection* c);
  void unlink(ClientConnection* c);
  void check_drained();
  // Arms file_cache_timer_ while this thread's open-file cache holds entries.
  void watch_file_cache();
  /// A connection accepted on listener `index`: admitted under the listener's limits and
  /// adopted, or refused at once (reset, counted, logged at most once per second).
  void accept_client(UniqueFd fd, const sockaddr_storage& peer, size_t index);
  void refuse(UniqueFd fd, const ListenerRuntime& l, const ClientKey& key, ConnectionLimiter::Verdict why);
  void on_accept_paused(size_t index, int err, std::chrono::milliseconds backoff);
  /// A peer outside a proxy_protocol listener's proxy_protocol_trusted: reset, counted, logged
  /// at most once per second.
  void refuse_untrusted(UniqueFd fd, const ListenerRuntime& l, const sockaddr_storage& peer);

  int index_;
  LoopShared& shared_;
  ev::Loop loop_;
  // Drops the open-file cache's inactive entries without waiting for a request (after a
  // reload, or when static traffic stops): their files close.
  ev::Timer file_cache_timer_;
  UpstreamPool pool_;
  std::shared_ptr<const Runtime> runtime_;
  // Idle HTTP/1.1 sessions kept for reuse (bounded), and those given back during the current
  // callback chain (sorted out by reap()). Destroyed before the pool and the loop.
  std::vector<std::unique_ptr<Http1Session>> spare_sessions_;
  std::vector<std::unique_ptr<Http1Session>> returned_sessions_;
  bool reap_posted_ = false;
  bool destroying_ = false;
  std::shared_ptr<AccessLog> access_log_;
  std::shared_ptr<const ListenerSet> listener_set_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unique_ptr<Listener> admin_watch_;  // the admin listener: kept while draining
  metrics::LoopCounters counters_;
  // The open connections, owned through an intrusive list (no allocation per connection);
  // a closed one moves to the graveyard until the callback chain is over.
  ClientConnection* first_connection_ = nullptr;
  size_t connection_count_ = 0;
  std::vector<std::unique_ptr<ClientConnection>> graveyard_;
  std::string log_line_;
  std::thread thread_;
  bool draining_ = false;
  bool drain_announced_ = false;
  bool drained_reported_ = false;
  bool retiring_ = false;
  std::atomic<bool> stop_{false};
};

}  // namespace corral::proxy
