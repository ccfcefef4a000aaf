#pragma once
// One request/response as the proxy handles it, independent of the frontend protocol
// (h2o's h2o_req_t, nghttpx's Downstream). A frontend fills in the request (from an
// HTTP/1.1 head or an HTTP/2 header block), buffers the body, then calls submit(); the
// Exchange runs the shared pipeline: dispatch (AppDispatcher lease, FIFO queue with its
// timeout, 503), the upstream request through an UpstreamClient chosen by app kind (connect
// failure → another worker, app timeout → 504 and the worker reported hung), and hands the
// response to its ExchangeSink. The frontend frames the response for its protocol and
// writes the access-log line with log().
//
// An HTTP/1.1 session owns one Exchange and reuses it per request (strings keep their
// capacity); an HTTP/2 session owns one per open stream (recycled with the stream). Loop-affine.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/ev/loop.h"
#include "proxy/compress/filter.h"
#include "proxy/dispatch/app_dispatcher.h"
#include "proxy/forwarding_headers.h"
#include "proxy/request_body.h"
#include "proxy/runtime.h"
#include "proxy/session_host.h"
#include "proxy/static/static_site.h"
#include "proxy/tunnel.h"
#include "proxy/upstream/upstream_client.h"

namespace corral::proxy {

enum class ExchangeState {
  Idle,        ///< between requests (keep-alive wait)
  ReadingHead, ///< first byte of a head received, head incomplete
  ReadingBody, ///< head accepted, buffering the body
  Queued,      ///< waiting for a lease (AppDispatcher queue)
  Upstream,    ///< request sent or being sent to a worker; response not complete
  Responding,  ///< response complete on our side; flushing to the client
  Closing,     ///< flushing a final response, then closing
  Tunnel,      ///< the worker switched protocols (101): bytes relayed both ways (proxy/tunnel.h)
};

/// Where an Exchange delivers the response. Implemented by the frontend (the HTTP/1.1
/// session, an HTTP/2 stream). Every callback runs on the loop thread, from inside the
/// pipeline: the sink must not destroy the Exchange during a callback (defer it).
class ExchangeSink {
 public:
  virtual ~ExchangeSink() = default;
  /// The worker's final response head (views valid during the call only).
  virtual void on_response_head(const http1::ResponseHead& head) noexcept = 0;
  /// An interim (1xx, not 101) head the worker sent before its final one (views valid during
  /// the call only). A frontend that cannot pass it on ignores it.
  virtual void on_response_interim(const http1::ResponseHead& head) noexcept { (void)head; }
  /// Response body bytes (valid during the call only).
  virtual void on_response_body(std::string_view data) noexcept = 0;
  /// A batch of head/body events is done: a good moment to write to the client.
  virtual void on_response_flush() noexcept = 0;
  /// The worker's response is complete; the lease is already released (the worker is free
  /// while the client downloads).
  virtual void on_response_complete() noexcept = 0;
  /// The body is `length` bytes of `file` from `offset` (a static file; never for HEAD). The
  /// sink keeps the reference until the bytes are sent and reads them when the client can
  /// take them (sendfile, pread): the file is never held in memory.
  virtual void on_response_file(std::shared_ptr<const statics::OpenFile> file, uint64_t offset,
                                uint64_t length) noexcept = 0;
  /// The pipeline could not produce a (complete) response. `status` is 502, 503 or 504 when
  /// no response head reached the sink yet (answer with it; `retry_after` for 503), and 0
  /// when part of the response is out (abort it: close the HTTP/1.1 connection, reset the
  /// HTTP/2 stream). The lease is already released.
  virtual void on_exchange_failed(int status, bool retry_after) noexcept = 0;

  // Tunnels (only for a request the frontend marked `upgrade`). After on_upgrade the
  // Exchange is in state Tunnel until the frontend cancels it; the lease is held (or moved
  // to the worker's tunnel places) until then.
  /// The worker answered 101 (views valid during the call only): answer the client (HTTP/1.1:
  /// the 101 head; HTTP/2: 200) and relay from now on.
  virtual void on_upgrade(const http1::ResponseHead& head) noexcept { (void)head; }
  /// Worker bytes for the client (valid during the call only); on_response_flush follows.
  /// Above the frontend's bound it calls pause_upstream().
  virtual void on_tunnel_data(std::string_view data) noexcept { (void)data; }
  /// The worker closed its sending side: half-close towards the client once all is out.
  virtual void on_tunnel_eof() noexcept {}
  /// The buffer towards the worker drained after tunnel_send() returned false: read the
  /// client again.
  virtual void on_tunnel_writable() noexcept {}
  /// The tunnel is over: both directions closed (TunnelEnd::Closed, `why` null), or the idle
  /// timeout or an error (`why` a static string for the log). Close the client side
  /// (HTTP/1.1: the connection once its buffer is out, at once otherwise; HTTP/2: the
  /// stream, reset with CANCEL after the idle timeout, INTERNAL_ERROR after an error).
  virtual void on_tunnel_closed(TunnelEnd end, const char* why) noexcept { (void)end, (void)why; }
};

class Exchange final : public UpstreamHandler, private compress::Output {
 public:
  using Clock = std::chrono::steady_clock;

  Exchange(SessionHost& host, ExchangeSink& sink);
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  /// Starts a request: takes the loop's current Runtime snapshot, stamps t_start and
  /// allocates the request id.
  void begin();
  /// Routes by (host, target); sets and returns `app` (-1: no route). On the admin listener
  /// every request is answered by the proxy itself (kLocal).
  int route(std::string_view host, std::string_view target, const ListenerRuntime* listener = nullptr);
  /// `app` of a request the proxy answers itself (the admin listener).
  static constexpr int kLocal = 1 << 30;
  /// `app` of a request routed to a static route (answered from files; see proxy/static/).
  static constexpr int kStatic = kLocal + 1;
  /// The app the request was routed to, or null (no route, or answered by the proxy).
  const AppRuntime* routed_app() const {
    return app >= 0 && app < kLocal && runtime ? &runtime->apps[static_cast<size_t>(app)] : nullptr;
  }
  /// A static route whose answer needs no worker unless it falls back to an app: the
  /// frontends build the worker's head only when needs_upstream_head().
  bool is_static() const { return app == kStatic; }
  /// Which of the request's fields the frontends capture into static_req: a static route
  /// answers from all of them, a compressing route reads only Accept-Encoding.
  statics::StaticRequest::Fields captured_fields() const {
    using F = statics::StaticRequest::Fields;
    if (app == kStatic) return F::All;
    return route_entry_ && route_entry_->compress ? F::AcceptEncoding : F::None;
  }
  bool needs_upstream_head() const { return app != kStatic || (route_entry_ && route_entry_->fallback >= 0); }
  /// Picks the request's traceparent: `client` (the value of its traceparent field) when
  /// the client sent exactly one (`client_fields`) and it is valid, else a new one from this
  /// thread's generator. Sets traceparent, trace_from_client and trace_id(). Both frontends
  /// call it once per request head, before any answer, so every access-log line has a trace.
  void set_trace(std::string_view client, int client_fields);
  /// The trace-id of traceparent (32 hex digits); empty before set_trace().
  std::string_view trace_id() const {
    return traceparent.size() >= 3 + kTraceIdSize ? std::string_view(traceparent).substr(3, kTraceIdSize)
                                                   : std::string_view();
  }
  /// The request is ready (upstream_head finished; the body buffered, or streaming in for
  /// an app with request_buffering = false): dispatch it. `body` (null: none) must stay
  /// valid until on_response_complete / on_exchange_failed / cancel(), which close it (its
  /// temp file goes at once). May call the sink synchronously (503, 502).
  void submit(RequestBody* body, std::string_view client_ip, bool tls);
  /// Client bytes for a tunnel. false: stop reading the client until on_tunnel_writable.
  bool tunnel_send(std::string_view data);
  /// The client closed its sending side of a tunnel.
  void tunnel_client_eof();
  /// Backpressure from the client: stop / restart reading the worker's response (or, for a
  /// tunnel, reading the worker).
  void pause_upstream();
  void resume_upstream();
  bool upstream_paused() const { return paused_; }
  /// The client went away or reset the stream: leaves the queue, aborts the upstream request
  /// and frees the worker slot. No sink callbacks. Safe in every state.
  void cancel();
  /// Writes the access-log line for this request.
  void log(std::string_view client_ip);
  /// The access-log status of a request whose client went away (closed the connection, or
  /// reset the stream) before the proxy had a response head for it (nginx's 499).
  static constexpr int kClientClosedStatus = 499;
  /// The client went away: a request still queued or with its worker (its response not
  /// complete) is cancelled (leaves the queue; the worker connection is closed, not drained,
  /// so the worker is free at once) and gets its access-log line, with kClientClosedStatus
  /// when no response head was produced. Returns whether there was such a request; the
  /// state is Closing afterwards (nothing is logged twice). Otherwise the same as cancel().
  bool client_gone(std::string_view client_ip);
  /// Forgets the request (keeps string capacity); cancels whatever is in flight.
  void reset();
  /// Frees per-request buffers while the connection waits for its next request.
  void release_idle_memory();

  // The request and its bookkeeping, filled by the frontend and the pipeline.
  ExchangeState state = ExchangeState::Idle;
  std::shared_ptr<const Runtime> runtime;  ///< the snapshot this request started with
  int app = -1;                            ///< index into runtime->apps
  std::string_view route_prefix;           ///< the matched route's path (lives in runtime's router)
  std::string method, target, host, user_agent, referer;
  int version_major = 1, version_minor = 1;
  bool had_body = false;
  /// The request asks the worker to switch protocols (Upgrade forwarded; set by the
  /// frontend before submit()): a 101 answer makes it a tunnel.
  bool upgrade = false;
  bool body_chunked = false;  ///< the body goes to the worker chunked (streamed, length unknown)
  std::array<char, RequestIdGenerator::kSize> request_id_buf{};
  std::string_view request_id;
  std::string traceparent;         ///< sent to the worker (set_trace); keeps its capacity
  bool trace_from_client = false;  ///< traceparent is the client's (its tracestate goes along)
  std::string upstream_head;  ///< the re-framed request head sent to the worker
  /// The client named by a trusted proxy's X-Forwarded-For ([proxy] trusted_proxies), set by
  /// the frontend before submit(); it replaces the connection's address for the access log
  /// and the worker. Empty = the connection's.
  std::string forwarded_client;
  statics::StaticRequest static_req;  ///< the fields a static answer or the compressor reads (captured_fields())
  int status = 0;
  bool response_started = false;  ///< a response head was produced (by the worker or the proxy)
  uint64_t bytes_sent = 0;        ///< response body bytes
  int slot = -1;
  int connect_attempts = 0;
  /// Why the proxy refused the request before it reached an app (a static string: the
  /// parser's reason or a limit's name); null otherwise. Counted in /metrics.
  const char* reject_reason = nullptr;
  Clock::time_point t_start{}, t_queued{}, t_sent{}, t_upstream_done{};

  /// Called (via the waiter, on this loop) when a queued request gets a lease.
  void on_granted(Lease lease);
  /// Called by the waiter when the grant happens on this loop's thread: keeps the lease and
  /// sends the request from the next loop iteration (zero-delay timer).
  void on_granted_here(Lease lease);

  // UpstreamHandler
  void on_upstream_connect_failed(int err) noexcept override;
  void on_upstream_head(const http1::ResponseHead& head) noexcept override;
  void on_upstream_interim(const http1::ResponseHead& head) noexcept override;
  void on_upstream_body(std::string_view data) noexcept override;
  void on_upstream_read_done() noexcept override;
  void on_upstream_complete() noexcept override;
  void on_upstream_error(const char* why) noexcept override;
  void on_upstream_upgrade(const http1::ResponseHead& head, std::unique_ptr<UpstreamConn> conn,
                           std::string_view early) noexcept override;

 private:
  class Waiter;
  void dispatch(Clock::time_point now);
  void send_upstream(Clock::time_point now);
  void on_timer();
  /// The queue timeout, the app timeout or a zero-delay grant: due `d` from now. One at a time.
  void set_deadline(Clock::time_point now, std::chrono::milliseconds d);
  void clear_deadline();
  void fail(int status, bool retry_after = false);
  /// timed_out: queue_timeout passed (the dispatcher counts it as a rejection).
  void leave_queue(bool timed_out = false);
  /// Answers a kLocal request (the admin listener) from the zero-delay timer.
  void respond_local();
  /// Answers a kStatic request from its folder (proxy/static/static_exchange.cc), or hands it
  /// to the route's fallback app.
  void serve_static();
  /// Adds the finished request to this loop's counters.
  void count();
  /// The route the request matched (null: none).
  const Router::Entry* route_entry_ = nullptr;
  bool local_pending_ = false;
  int queue_reject_ = -1;  // a metrics::QueueReject, -1 = none

  SessionHost& host_;
  ExchangeSink& sink_;
  ev::Timer timer_;  // queue timeout / app timeout / grant; fires at timer_at_ (see set_deadline)
  Clock::time_point deadline_{}, timer_at_{};
  std::shared_ptr<Waiter> waiter_;
  std::unique_ptr<UpstreamClient> upstream_;
  std::unique_ptr<Tunnel> tunnel_;
  conf::AppKind upstream_kind_ = conf::AppKind::Http;
  Lease lease_;
  RequestBody* body_ = nullptr;
  std::string_view client_ip_;
  /// The request is over: the body's temp file is closed, its memory freed.
  void end_body();
  bool tls_ = false;
  bool paused_ = false;
  // The route's response compression (proxy/compress): the filter, and the head it rewrote.
  compress::ResponseFilter compress_;
  http1::ResponseHead filtered_head_;
  int compressed_ = -1;  ///< the response is compressed: 0 gzip, 1 br (for /metrics); -1 = not
  /// compress::Output: compressed bytes go to the sink.
  void write(std::string_view piece) override;
  /// The codec failed mid-response: abort it as a failed upstream would.
  void compress_failed();
};

}  // namespace corral::proxy
