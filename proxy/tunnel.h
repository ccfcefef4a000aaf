#pragma once
// The worker side of a tunnel: after a worker answered an Upgrade request (WebSocket) with
// 101 Switching Protocols, its connection carries opaque bytes both ways until either side
// is done. The Tunnel owns that connection (it never goes back to the keep-alive pool),
// writes what the client sends to it (buffered up to kTunnelBufferLimit: above that the
// frontend stops reading the client until on_tunnel_writable), and hands what the worker
// sends to the frontend through its ExchangeSink (the frontend pauses it when its own
// buffer towards the client passes its bound). Half-closes travel: the worker's EOF becomes
// on_tunnel_eof (the frontend half-closes the client side once its buffer is out), the
// client's EOF a shutdown(SHUT_WR) towards the worker once the buffer is written. The
// tunnel is over when both directions are closed, on an error, or when no byte moved
// either way for the app's tunnel_idle_timeout: then on_tunnel_closed.
//
// Owned by its Exchange (which also holds the worker's lease until the tunnel closes).
// Loop-affine; callbacks run on the loop thread and may destroy the tunnel only by
// deferring (the sink closes from its own callbacks the way it always does).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/ev/loop.h"
#include "proxy/metrics/metrics.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {

class ExchangeSink;

/// Bytes buffered towards the worker before the frontend stops reading its client (and,
/// in the frontends, towards the client before the tunnel stops reading the worker).
inline constexpr size_t kTunnelBufferLimit = 256 * 1024;

/// How a tunnel ended (ExchangeSink::on_tunnel_closed).
enum class TunnelEnd {
  Closed,       ///< both directions closed: nothing lost
  IdleTimeout,  ///< no byte moved either way for the app's tunnel_idle_timeout
  Failed,       ///< the worker connection failed (reset, write error)
};

class Tunnel final : public UpstreamIoHandler {
 public:
  /// Takes the worker connection. `bytes` (this thread's copy of the app's counters, may be
  /// null) get the tunnel's byte counts.
  Tunnel(ev::Loop& loop, ExchangeSink& sink, std::unique_ptr<UpstreamConn> conn, std::chrono::milliseconds idle,
         metrics::TunnelBytes* bytes);
  ~Tunnel() override;
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  /// Delivers the bytes the worker sent right after its 101 head (read with it) and starts
  /// reading the worker.
  void start(std::string_view early);
  /// Client bytes for the worker. false: the buffer is above kTunnelBufferLimit, stop
  /// reading the client until on_tunnel_writable (the bytes are taken either way).
  bool send(std::string_view data);
  /// The client closed its sending side.
  void client_eof();
  /// Stop / restart reading the worker (the frontend's buffer towards the client).
  void pause();
  void resume();
  /// The exchange lets go (the client is gone, or the tunnel is over): no more callbacks,
  /// the worker connection is no longer watched. Destroy it outside its own callbacks.
  void detach();
  /// Bytes worker → client so far (the access log's bytes sent).
  uint64_t bytes_down() const { return bytes_down_; }
  /// on_tunnel_closed was reported (or is about to be); the tunnel does nothing more.
  bool finished() const { return finished_; }

  void on_upstream_io(bool readable, bool writable) noexcept override;

 private:
  void read_worker();
  // Writes what the worker's socket takes now (finishes the tunnel on a write error);
  // returns the bytes written.
  size_t send_now(const char* data, size_t size);
  void write_worker();
  void activity();
  void on_timer();
  void check_done();
  void finish(TunnelEnd end, const char* why);
  void update_interest();

  ev::Loop& loop_;
  ExchangeSink& sink_;
  std::unique_ptr<UpstreamConn> conn_;
  std::chrono::milliseconds idle_;
  metrics::TunnelBytes* bytes_;
  ev::Timer timer_;
  std::chrono::steady_clock::time_point last_activity_{};
  std::string out_;  // towards the worker
  size_t out_pos_ = 0;
  uint64_t bytes_down_ = 0;
  bool paused_ = false;
  bool blocked_ = false;      // send() returned false; on_tunnel_writable is owed
  bool worker_eof_ = false;   // the worker closed its sending side
  bool client_eof_ = false;   // the client did
  bool shut_worker_ = false;  // our shutdown(SHUT_WR) towards the worker is done
  bool finished_ = false;
};

}  // namespace corral::proxy
