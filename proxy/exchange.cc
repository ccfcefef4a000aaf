#include "proxy/exchange.h"

#include <cstring>
#include <ctime>
#include <mutex>

#include "common/base/log.h"
#include "common/base/log_throttle.h"
#include "common/http1/serializer.h"
#include "proxy/admin/admin.h"
#include "proxy/tunnel.h"

namespace corral::proxy {
namespace {

constexpr int kMaxConnectAttempts = 3;

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

double secs(Exchange::Clock::time_point a, Exchange::Clock::time_point b) {
  if (a == Exchange::Clock::time_point{} || b == Exchange::Clock::time_point{} || b < a) return 0;
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

/// Bridges AppDispatcher grants (any thread) to the exchange's loop.
class Exchange::Waiter : public ::corral::proxy::Waiter, public std::enable_shared_from_this<Exchange::Waiter> {
 public:
  Waiter(ev::Loop& loop, Exchange* e) : loop_(loop), exchange_(e) {}
  void grant(Lease lease) override {
    // Granted on the exchange's own loop (a request on this loop finished and freed the
    // slot; the common case with one proxy thread): the lease goes to the exchange at once and
    // it sends from a zero-delay timer, without the post()'s eventfd write and read.
    if (exchange_ && loop_.is_current()) {
      exchange_->on_granted_here(std::move(lease));
      return;
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      lease_ = std::move(lease);
    }
    loop_.post([self = shared_from_this()] { self->deliver(); });
  }
  /// Loop thread.
  void detach() { exchange_ = nullptr; }

 private:
  void deliver() {
    Lease l;
    {
      std::lock_guard<std::mutex> g(mu_);
      l = std::move(lease_);
    }
    // A detached waiter lets the lease go, which releases it.
    if (exchange_ && l) exchange_->on_granted(std::move(l));
  }
  ev::Loop& loop_;
  std::mutex mu_;
  Lease lease_;
  Exchange* exchange_;
};

Exchange::Exchange(SessionHost& session_host, ExchangeSink& sink)
    : host_(session_host), sink_(sink), timer_(session_host.loop(), [this] { on_timer(); }) {}

Exchange::~Exchange() {
  cancel();
  if (waiter_) waiter_->detach();
}

void Exchange::begin() {
  runtime = host_.runtime();
  t_start = host_.loop().now();
  request_id = host_.request_ids().next(request_id_buf);
}

int Exchange::route(std::string_view h, std::string_view t, const ListenerRuntime* listener) {
  if (listener && listener->admin) {
    route_entry_ = nullptr;
    app = kLocal;
    return app;
  }
  route_entry_ = runtime->router.find(h, t);
  if (!route_entry_) {
    app = -1;
    return app;
  }
  route_prefix = route_entry_->path;
  app = route_entry_->static_site ? kStatic : route_entry_->app;
  return app;
}

void Exchange::set_trace(std::string_view client, int client_fields) {
  // Several traceparent fields are ambiguous: a new trace, as for an invalid one.
  trace_from_client = client_fields == 1 && valid_traceparent(client);
  if (trace_from_client) {
    traceparent.assign(client);
    return;
  }
  std::array<char, kTraceparentSize> buf;
  traceparent.assign(TraceParentGenerator::for_this_thread().next(buf));
}

void Exchange::submit(RequestBody* body, std::string_view client_ip, bool tls) {
  body_ = body;
  client_ip_ = forwarded_client.empty() ? client_ip : std::string_view(forwarded_client);
  tls_ = tls;
  t_queued = host_.loop().now();
  if (app == kLocal) {
    // Answered from the next loop iteration, like a worker's response: the sink is never
    // called back from inside submit().
    state = ExchangeState::Upstream;
    t_sent = t_queued;
    local_pending_ = true;
    set_deadline(t_queued, std::chrono::milliseconds(0));
    return;
  }
  if (app == kStatic) {
    serve_static();  // answers synchronously (like the frontends' own errors) or dispatches
    return;
  }
  dispatch(t_queued);
}

void Exchange::respond_local() {
  const AdminService* admin = host_.admin();
  LocalResponse r;
  if (admin && runtime) {
    r = admin->handle(method, target, *runtime);
  } else {
    r.status = 503;
    r.body = "the admin listener is not ready\n";
  }
  http1::ResponseHead head;
  head.status = r.status;
  head.reason = http1::reason_phrase(r.status);
  head.headers.push_back({"content-type", r.content_type});
  for (const auto& [n, v] : r.headers) head.headers.push_back({n, v});
  head.body = http1::BodyKind::ContentLength;
  head.content_length = r.body.size();
  head.has_content_length = true;
  on_upstream_head(head);
  if (method != "HEAD" && !r.body.empty()) on_upstream_body(r.body);
  on_upstream_read_done();
  t_upstream_done = host_.loop().now();
  state = ExchangeState::Responding;
  sink_.on_response_complete();
}

void Exchange::dispatch(Clock::time_point now) {
  const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
  if (!waiter_) waiter_ = std::make_shared<Waiter>(host_.loop(), this);
  Lease lease;
  const auto outcome = a.dispatcher->acquire(waiter_, lease, upgrade);
  switch (outcome) {
    case AppDispatcher::Outcome::Granted:
      lease_ = std::move(lease);
      send_upstream(now);
      return;
    case AppDispatcher::Outcome::Queued:
      state = ExchangeState::Queued;
      set_deadline(now, a.queue_timeout);
      return;
    case AppDispatcher::Outcome::QueueFull:
    case AppDispatcher::Outcome::NoWorkers:
      queue_reject_ = static_cast<int>(outcome == AppDispatcher::Outcome::QueueFull ? metrics::QueueReject::QueueFull
                                                                                    : metrics::QueueReject::NoWorkers);
      fail(503, true);
      return;
  }
}

void Exchange::on_granted(Lease lease) {
  if (state != ExchangeState::Queued) return;  // lease released on return
  clear_deadline();
  lease_ = std::move(lease);
  send_upstream(host_.loop().now());
}

void Exchange::on_granted_here(Lease lease) {
  if (state != ExchangeState::Queued || lease_) return;  // lease released on return
  // Not sent from here: the grant comes from inside another exchange's release (its
  // completion, cancel or destruction), which must not re-enter this one's pipeline.
  lease_ = std::move(lease);
  set_deadline(host_.loop().now(), std::chrono::milliseconds(0));
}

void Exchange::send_upstream(Clock::time_point now) {
  const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
  state = ExchangeState::Upstream;
  slot = lease_.slot();
  t_sent = now;
  // Named in the worker's death record should it die under this request.
  lease_.describe(RequestRef{request_id, method, target, t_start, trace_id()});
  set_deadline(now, a.timeout);
  if (!upstream_ || upstream_kind_ != a.kind) {
    upstream_ = make_upstream_client(a.kind, host_.pool(), *this);
    upstream_kind_ = a.kind;
  }
  paused_ = false;
  UpstreamRequest req;
  req.path = lease_.path();
  req.generation = lease_.generation();
  req.method = method;
  req.idempotent = is_idempotent(method);
  req.head = upstream_head;
  req.upgrade = upgrade;
  req.source = body_;
  req.chunked = body_chunked;
  req.client_ip = client_ip_;
  req.tls = tls_;
  req.script_app = a.script_app.get();
  req.route_prefix = route_prefix;
  upstream_->start(req);
}

void Exchange::on_upstream_connect_failed(int err) noexcept {
  const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
  // A worker that stopped listening fails every request sent its way until the supervisor
  // replaces it (the proxy reports it): one line a second, not one per request.
  static LogThrottle limit;
  if (uint64_t held = 0; limit.allow(&held)) {
    CORRAL_LOG(Warn, "upstream") << "connect to " << a.name << "#" << slot << " (" << lease_.path()
                                 << ") failed: " << std::strerror(err) << "; trying another worker"
                                 << (held ? " (" + std::to_string(held) + " more connect failures since the last line)" : "");
  }
  clear_deadline();
  lease_.release_failed_connect();
  slot = -1;
  if (++connect_attempts < kMaxConnectAttempts) {
    dispatch(host_.loop().now());
    return;
  }
  fail(502);
}

void Exchange::on_upstream_interim(const http1::ResponseHead& head) noexcept {
  if (!response_started) sink_.on_response_interim(head);
}

void Exchange::on_upstream_head(const http1::ResponseHead& head) noexcept {
  status = head.status;
  response_started = true;
  // A static route's files are never compressed here (precompressed siblings are); its
  // fallback app's responses are, like any app's.
  if (app != kStatic && route_entry_ && route_entry_->compress &&
      compress_.start(*route_entry_->compress, static_req.accept, method == "HEAD", head, filtered_head_) !=
          compress::ResponseFilter::Decision::Pass) {
    if (compress_.active()) compressed_ = compress_.coding() == compress::Coding::Br ? 1 : 0;
    sink_.on_response_head(filtered_head_);
    return;
  }
  sink_.on_response_head(head);
}

void Exchange::on_upstream_body(std::string_view data) noexcept {
  if (compress_.active()) {
    if (!compress_.write(data, *this)) compress_failed();
    return;
  }
  bytes_sent += data.size();
  sink_.on_response_body(data);
}

void Exchange::write(std::string_view piece) {
  bytes_sent += piece.size();
  sink_.on_response_body(piece);
}

void Exchange::compress_failed() {
  CORRAL_LOG(Error, "compress") << "the " << compress::coding_name(compress_.coding())
                                << " encoder failed mid-response [rid=" << request_id << "]";
  compress_.reset();
  if (upstream_) upstream_->abort();
  t_upstream_done = host_.loop().now();
  fail(0);
}

void Exchange::on_upstream_read_done() noexcept {
  // The worker went quiet: what the codec holds goes out now (a stream of events is not held
  // back waiting for more input).
  if (compress_.active() && !compress_.flush(*this)) {
    compress_failed();
    return;
  }
  sink_.on_response_flush();
}

void Exchange::on_upstream_complete() noexcept {
  if (compress_.active() && !compress_.finish(*this)) {
    compress_failed();
    return;
  }
  t_upstream_done = host_.loop().now();
  clear_deadline();
  // Released before the client has downloaded anything: a slow client never holds a worker.
  lease_.release();
  end_body();
  paused_ = false;
  state = ExchangeState::Responding;
  sink_.on_response_complete();
}

void Exchange::on_upstream_error(const char* why) noexcept {
  const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
  CORRAL_LOG(Warn, "upstream") << a.name << "#" << slot << ": " << why << " [rid=" << request_id << "]";
  t_upstream_done = host_.loop().now();
  lease_.release_lost();  // kept a few seconds for the worker's death record
  // A streamed body the client cut short: the worker saw the request aborted; the client
  // (gone or sending garbage) gets 400, not a 502 blaming the app.
  int st = body_ && body_->failed() ? 400 : 502;
  fail(response_started ? 0 : st);
}

void Exchange::on_upstream_upgrade(const http1::ResponseHead& head, std::unique_ptr<UpstreamConn> conn,
                                   std::string_view early) noexcept {
  const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
  t_upstream_done = host_.loop().now();
  clear_deadline();  // the app's timeout is for responses; a tunnel has its idle timeout
  status = head.status;
  response_started = true;
  state = ExchangeState::Tunnel;
  lease_.to_tunnel();
  // Counted per app by its dispatcher: a reload that drops the route (or a static route's
  // fallback) does not take the bytes along.
  metrics::TunnelBytes* bytes = a.dispatcher ? &a.dispatcher->tunnel_bytes(host_.thread_index()) : nullptr;
  tunnel_ = std::make_unique<Tunnel>(host_.loop(), sink_, std::move(conn), a.tunnel_idle_timeout, bytes);
  CORRAL_LOG(Debug, "tunnel") << a.name << "#" << slot << ": switched protocols [rid=" << request_id << "]";
  sink_.on_upgrade(head);
  // The sink may have failed to answer the client (closed): then cancel() dropped the tunnel.
  if (tunnel_ && !tunnel_->finished()) tunnel_->start(early);
}

bool Exchange::tunnel_send(std::string_view data) {
  if (!tunnel_) return true;
  return tunnel_->send(data);
}

void Exchange::tunnel_client_eof() {
  if (tunnel_) tunnel_->client_eof();
}

void Exchange::set_deadline(Clock::time_point now, std::chrono::milliseconds d) {
  deadline_ = now + d;
  // The timer stays armed across requests (an exchange serves request after request): it is
  // moved only when the new deadline is earlier than the one it will fire at, so a busy
  // exchange costs the loop's timer heap one insertion per timeout period, not two
  // operations per request. on_timer() checks what is really due.
  if (timer_at_ != Clock::time_point{} && timer_at_ <= deadline_) return;  // armed, fires first
  timer_at_ = deadline_;
  timer_.arm(d);
}

void Exchange::clear_deadline() { deadline_ = Clock::time_point{}; }

void Exchange::on_timer() {
  timer_at_ = Clock::time_point{};
  if (deadline_ == Clock::time_point{}) return;  // nothing due any more
  auto now = host_.loop().now();
  if (deadline_ > now + std::chrono::milliseconds(1)) {
    // Fired for an earlier deadline that has since been cleared or moved later.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - now);
    timer_at_ = deadline_;
    timer_.arm(left);
    return;
  }
  deadline_ = Clock::time_point{};
  if (local_pending_) {
    local_pending_ = false;
    respond_local();
    return;
  }
  if (state == ExchangeState::Queued && lease_) {
    send_upstream(now);  // granted by on_granted_here()
    return;
  }
  if (state == ExchangeState::Queued) {
    leave_queue(/*timed_out=*/true);
    queue_reject_ = static_cast<int>(metrics::QueueReject::QueueTimeout);
    fail(503, true);
    return;
  }
  if (state == ExchangeState::Upstream) {
    const AppRuntime& a = runtime->apps[static_cast<size_t>(app)];
    CORRAL_LOG(Warn, "upstream") << a.name << "#" << slot << " did not answer within " << a.timeout.count()
                                 << "ms [rid=" << request_id << "]";
    host_.report_hung(a.name, slot, lease_.generation(), request_id);
    if (upstream_) upstream_->abort();
    t_upstream_done = host_.loop().now();
    lease_.release_hung();
    fail(response_started ? 0 : 504);
  }
}

void Exchange::end_body() {
  if (body_) body_->close();
  body_ = nullptr;
}

void Exchange::fail(int st, bool retry_after) {
  compress_.reset();
  clear_deadline();
  end_body();
  if (lease_) lease_.release();
  paused_ = false;
  state = ExchangeState::Responding;
  sink_.on_exchange_failed(st, retry_after);
}

void Exchange::leave_queue(bool timed_out) {
  if (state != ExchangeState::Queued || !waiter_ || !runtime || app < 0) return;
  if (!runtime->apps[static_cast<size_t>(app)].dispatcher->cancel(waiter_.get(), timed_out)) {
    // The grant raced with us: it is in flight to this loop; let it release itself.
    waiter_->detach();
    waiter_.reset();
  }
}

void Exchange::pause_upstream() {
  if (tunnel_) {
    paused_ = true;
    tunnel_->pause();
    return;
  }
  if (paused_ || !upstream_ || state != ExchangeState::Upstream) return;
  paused_ = true;
  upstream_->pause_reading();
}

void Exchange::resume_upstream() {
  if (!paused_) return;
  paused_ = false;
  if (tunnel_) {
    tunnel_->resume();
    return;
  }
  if (upstream_) upstream_->resume_reading();
}

void Exchange::cancel() {
  compress_.reset();
  clear_deadline();
  leave_queue();
  if (tunnel_) {
    // Possibly called from inside the tunnel's own callback: it stops now and is destroyed
    // from the next loop iteration (its worker connection closes then).
    tunnel_->detach();
    bytes_sent = tunnel_->bytes_down();
    std::shared_ptr<Tunnel> doomed(tunnel_.release());
    host_.loop().post([doomed] {});
  }
  if (upstream_) upstream_->abort();
  // An aborted upstream request frees the slot at once (the worker sees the connection close).
  if (lease_) lease_.release();
  paused_ = false;
  end_body();
}

bool Exchange::client_gone(std::string_view client_ip) {
  if (state != ExchangeState::Queued && state != ExchangeState::Upstream) {
    cancel();
    return false;
  }
  CORRAL_LOG(Debug, "proxy") << "client " << client_ip << " went away; cancelling its request"
                             << (state == ExchangeState::Queued ? " (queued)" : "") << " [rid=" << request_id << "]";
  cancel();
  if (status == 0) status = kClientClosedStatus;
  if (t_sent != Clock::time_point{} && t_upstream_done == Clock::time_point{}) t_upstream_done = host_.loop().now();
  state = ExchangeState::Closing;
  log(client_ip);
  return true;
}

void Exchange::count() {
  metrics::LoopCounters* lc = host_.counters();
  const metrics::Protocol proto = version_major == 2 ? metrics::Protocol::Http2 : metrics::Protocol::Http1;
  if (route_entry_ && route_entry_->metrics) {
    metrics::RouteCounters& c = route_entry_->metrics->counters.at(host_.thread_index());
    c.requests[static_cast<size_t>(proto)][metrics::status_class(status)].add();
    if (queue_reject_ >= 0) c.rejected[static_cast<size_t>(queue_reject_)].add();
    if (compressed_ >= 0) {
      c.compressed[static_cast<size_t>(compressed_)].add();
      c.compress_bytes_in.add(compress_.bytes_in());
      c.compress_bytes_out.add(compress_.bytes_out());
    }
    auto now = host_.loop().now();
    c.duration.observe(secs(t_start, now));
    if (t_sent != Clock::time_point{}) {
      c.queue.observe(secs(t_queued, t_sent));
      if (t_upstream_done != Clock::time_point{}) c.upstream.observe(secs(t_sent, t_upstream_done));
    } else if (queue_reject_ >= 0) {
      c.queue.observe(secs(t_queued, now));
    }
    return;
  }
  if (app == kLocal || !lc) return;
  // Answered by the proxy before any app: count why.
  const char* why = reject_reason;
  if (!why) {
    switch (status) {
      case 404: why = "no route"; break;
      case 408: why = "request timeout"; break;
      case 413: why = "body too large"; break;
      case 431: why = "header section too large"; break;
      case 308: why = "redirect to https"; break;
      default: why = "bad request"; break;
    }
  }
  lc->reject(why, status, proto);
}

void Exchange::log(std::string_view client_ip) {
  count();
  // access_log = "off": nothing to build (the record costs two clock reads).
  if (runtime && runtime->proxy.access_log == "off") return;
  AccessRecord r;
  r.client_ip = forwarded_client.empty() ? client_ip : std::string_view(forwarded_client);
  r.method = method;
  r.target = target;
  r.version_major = version_major;
  r.version_minor = version_minor;
  r.status = status;
  r.bytes_sent = bytes_sent;
  r.referer = referer;
  r.user_agent = user_agent;
  r.request_id = request_id;
  r.trace_id = trace_id();
  if (runtime && app >= 0 && app < kLocal && slot >= 0) {
    r.app = runtime->apps[static_cast<size_t>(app)].name;
    r.slot = slot;
  } else if (app == kStatic) {
    r.app = "static";  // answered from the route's folder, no worker
  }
  auto now = host_.loop().now();
  r.queue_s = secs(t_queued, t_sent);
  r.upstream_s = secs(t_sent, t_upstream_done);
  r.rt_s = secs(t_start, now);
  r.time = ::time(nullptr);
  host_.log_access(r);
}

void Exchange::release_idle_memory() {
  if (upstream_) upstream_->release_idle_buffers();
  // Request strings keep small capacities; only a large re-framed head is worth giving back.
  if (upstream_head.capacity() > 4096) std::string().swap(upstream_head);
}

void Exchange::reset() {
  cancel();
  state = ExchangeState::Idle;
  runtime.reset();
  app = -1;
  method.clear();
  target.clear();
  host.clear();
  user_agent.clear();
  referer.clear();
  version_major = 1;
  version_minor = 1;
  had_body = false;
  upgrade = false;
  request_id = {};
  traceparent.clear();
  trace_from_client = false;
  static_req.clear();
  upstream_head.clear();
  forwarded_client.clear();
  status = 0;
  response_started = false;
  bytes_sent = 0;
  slot = -1;
  connect_attempts = 0;
  reject_reason = nullptr;
  route_entry_ = nullptr;
  local_pending_ = false;
  queue_reject_ = -1;
  compressed_ = -1;
  body_ = nullptr;
  body_chunked = false;
  t_start = t_queued = t_sent = t_upstream_done = Clock::time_point{};
}

}  // namespace corral::proxy
