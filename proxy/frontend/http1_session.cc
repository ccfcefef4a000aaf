#include "proxy/frontend/http1_session.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include "common/base/log.h"
#include "common/base/strings.h"

namespace corral::proxy {
namespace {

using Clock = Exchange::Clock;

constexpr int kMaxConnectAttempts = 3;
// Pipelined bytes read ahead while a request is in flight (beyond this, reading pauses).
constexpr size_t kMaxReadAhead = 64 * 1024;
constexpr size_t kReadSize = 16 * 1024;

std::string_view status_reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

void append_hex(std::string& out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = kHex[v & 0xf];
    v >>= 4;
  } while (v);
  while (n) out.push_back(tmp[--n]);
}

}  // namespace

/// Bridges AppDispatcher grants (any thread) to the session's loop.
class Http1Session::Waiter : public ::corral::proxy::Waiter, public std::enable_shared_from_this<Http1Session::Waiter> {
 public:
  Waiter(ev::Loop& loop, Http1Session* s) : loop_(loop), session_(s) {}
  void grant(Lease lease) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      lease_ = std::move(lease);
    }
    loop_.post([self = shared_from_this()] { self->deliver(); });
  }
  /// Loop thread.
  void detach() { session_ = nullptr; }

 private:
  void deliver() {
    Lease l;
    {
      std::lock_guard<std::mutex> g(mu_);
      l = std::move(lease_);
    }
    // A detached waiter lets the lease go, which releases it.
    if (session_ && l) session_->on_granted(std::move(l));
  }
  ev::Loop& loop_;
  std::mutex mu_;
  Lease lease_;
  Http1Session* session_;
};

Http1Session::Http1Session(SessionHost& host, UniqueFd fd, std::string client_ip)
    : host_(host),
      fd_(std::move(fd)),
      client_ip_(std::move(client_ip)),
      watch_(host.loop(), fd_.get(), [this](bool r, bool w) { on_io(r, w); }),
      client_timer_(host.loop(), [this] { on_client_timer(); }),
      exchange_timer_(host.loop(), [this] { on_exchange_timer(); }),
      parser_(host.runtime()->limits),
      upstream_(host.pool(), *this) {}

Http1Session::~Http1Session() {
  if (waiter_) waiter_->detach();
}

void Http1Session::start() {
  ex_.state = ExchangeState::Idle;
  // A new connection must send its first head within the header timeout.
  client_timer_.arm(host_.runtime()->proxy.client_header_timeout);
  watch_.set(true, false);
}

void Http1Session::drain() {
  draining_ = true;
  if (ex_.state == ExchangeState::Idle && in_.empty() && out_pos_ == out_.size()) close();
}

double Http1Session::secs(Clock::time_point a, Clock::time_point b) const {
  if (a == Clock::time_point{} || b == Clock::time_point{} || b < a) return 0;
  return std::chrono::duration<double>(b - a).count();
}

void Http1Session::on_io(bool readable, bool writable) {
  if (closed_) return;
  if (writable) flush();
  if (closed_) return;
  if (readable) read_client();
}

void Http1Session::read_client() {
  size_t room = 0;
  char* p = in_.prepare(kReadSize, &room);
  ssize_t n;
  do {
    n = ::recv(fd_.get(), p, room, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return;
    close();  // reset by peer: nobody is left to answer
    return;
  }
  if (n == 0) {
    client_eof_ = true;
    switch (ex_.state) {
      case ExchangeState::Idle:
      case ExchangeState::ReadingHead:
      case ExchangeState::ReadingBody:
      case ExchangeState::Queued:
        // Nothing was sent to a worker yet (a queued request is cancelled in close()).
        close();
        return;
      case ExchangeState::Upstream:
      case ExchangeState::Responding:
      case ExchangeState::Closing:
        // A half-closed client may still read the answer; it is closed afterwards.
        update_read_interest();
        return;
    }
    return;
  }
  in_.commit(static_cast<size_t>(n));
  process();
}

void Http1Session::process() {
  if (in_process_) return;
  in_process_ = true;
  while (!closed_) {
    ExchangeState s = ex_.state;
    if (s == ExchangeState::Idle || s == ExchangeState::ReadingHead) {
      if (in_.empty() || !parse_head()) break;
    } else if (s == ExchangeState::ReadingBody) {
      if (!read_body()) break;
    } else {
      break;
    }
  }
  in_process_ = false;
  if (!closed_) update_read_interest();
}

bool Http1Session::parse_head() {
  if (ex_.state == ExchangeState::Idle) {
    ex_.state = ExchangeState::ReadingHead;
    ex_.t_start = host_.loop().now();
    const auto& rt = host_.runtime();
    if (ex_.runtime.get() != rt.get() && (!ex_.runtime || ex_.runtime->limits.max_head_size != rt->limits.max_head_size ||
                                          ex_.runtime->limits.max_header_count != rt->limits.max_header_count))
      parser_ = http1::RequestParser(rt->limits);
    ex_.runtime = rt;
    // A deadline for the whole head from its first byte: trickling bytes cannot extend it.
    client_timer_.arm(rt->proxy.client_header_timeout);
  }
  auto hr = parser_.parse(in_.readable(), head_);
  if (hr.status == http1::ParseStatus::Incomplete) return false;
  if (hr.status == http1::ParseStatus::Error) {
    CORRAL_LOG(Debug, "http1") << "bad request from " << client_ip_ << ": " << hr.error.reason;
    respond_error(hr.error.status, status_reason(hr.error.status), true);
    return false;
  }
  head_accepted(head_, hr.consumed);
  return !closed_ && (ex_.state == ExchangeState::ReadingBody || ex_.state == ExchangeState::Idle);
}

void Http1Session::head_accepted(const http1::RequestHead& head, size_t head_size) {
  const Runtime& rt = *ex_.runtime;
  ex_.method.assign(head.method);
  ex_.target.assign(head.target);
  ex_.host.assign(head.host);
  ex_.user_agent.clear();
  ex_.referer.clear();
  for (const auto& h : head.headers) {
    if (iequals(h.name, "user-agent")) ex_.user_agent.assign(h.value);
    else if (iequals(h.name, "referer")) ex_.referer.assign(h.value);
  }
  ex_.version_minor = head.version_minor;
  ex_.keep_alive = head.keep_alive && !draining_ && !host_.draining();
  ex_.had_body = head.body != http1::BodyKind::None;
  ex_.request_id = host_.request_ids().next(ex_.request_id_buf);
  ex_.app = rt.router.match(head.host, head.target);

  if (head.body == http1::BodyKind::ContentLength && head.content_length > rt.proxy.max_body_size) {
    in_.consume(head_size);
    respond_error(413, status_reason(413), true);
    return;
  }
  if (ex_.app < 0) {
    in_.consume(head_size);
    // The body (if any) is not read: the connection cannot be reused.
    respond_error(404, status_reason(404), ex_.had_body);
    return;
  }
  Forwarding fwd;
  fwd.client_ip = client_ip_;
  fwd.host = head.host;
  fwd.request_id = ex_.request_id;
  append_request_head(head, fwd, ex_.upstream_head);
  bool expect_continue = head.expect_continue;
  in_.consume(head_size);  // head views are dead from here on
  parser_.reset();
  body_.reset(rt.proxy.max_body_size);
  if (!ex_.had_body) {
    body_complete();
    return;
  }
  decoder_.start(head.body, head.content_length);
  if (decoder_.done()) {  // Content-Length: 0
    body_complete();
    return;
  }
  ex_.state = ExchangeState::ReadingBody;
  body_started_ = host_.loop().now();
  body_bytes_read_ = 0;
  client_timer_.arm(rt.proxy.client_body_timeout);
  if (expect_continue && in_.empty() && ex_.version_minor >= 1) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    flush();
  }
}

bool Http1Session::read_body() {
  if (in_.empty()) return false;
  const auto& proxy = ex_.runtime->proxy;
  while (!in_.empty()) {
    auto st = decoder_.step(in_.readable());
    if (st.error) {
      respond_error(st.why.status ? st.why.status : 400, status_reason(st.why.status ? st.why.status : 400), true);
      return false;
    }
    if (!st.data.empty() && !body_.append(st.data)) {
      respond_error(413, status_reason(413), true);
      return false;
    }
    in_.consume(st.consumed);
    body_bytes_read_ += st.consumed;
    if (st.done || decoder_.done()) {
      body_complete();
      return !closed_ && ex_.state == ExchangeState::Idle;
    }
    if (st.consumed == 0) break;
  }
  // Body still incomplete: enforce the pause timeout and, after it, the minimum rate.
  auto now = host_.loop().now();
  auto elapsed = now - body_started_;
  if (elapsed > proxy.client_body_timeout) {
    double s = std::chrono::duration<double>(elapsed).count();
    if (static_cast<double>(body_bytes_read_) / s < static_cast<double>(proxy.client_body_min_rate)) {
      respond_error(408, status_reason(408), true);
      return false;
    }
  }
  client_timer_.arm(proxy.client_body_timeout);
  return false;
}

void Http1Session::body_complete() {
  finish_request_head(ex_.upstream_head, body_.size(), ex_.had_body);
  client_timer_.cancel();
  ex_.t_queued = host_.loop().now();
  dispatch();
}

void Http1Session::dispatch() {
  const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
  if (!waiter_) waiter_ = std::make_shared<Waiter>(host_.loop(), this);
  Lease lease;
  switch (app.dispatcher->acquire(waiter_, lease)) {
    case AppDispatcher::Outcome::Granted:
      ex_.lease = std::move(lease);
      send_upstream();
      return;
    case AppDispatcher::Outcome::Queued:
      ex_.state = ExchangeState::Queued;
      exchange_timer_.arm(app.queue_timeout);
      return;
    case AppDispatcher::Outcome::QueueFull:
    case AppDispatcher::Outcome::NoWorkers:
      respond_error(503, status_reason(503), false, true);
      return;
  }
}

void Http1Session::on_granted(Lease lease) {
  if (closed_ || ex_.state != ExchangeState::Queued) return;  // lease released on return
  exchange_timer_.cancel();
  ex_.lease = std::move(lease);
  send_upstream();
}

void Http1Session::send_upstream() {
  const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
  ex_.state = ExchangeState::Upstream;
  ex_.slot = ex_.lease.slot();
  ex_.t_sent = host_.loop().now();
  exchange_timer_.arm(app.timeout);
  upstream_.start(ex_.lease.path(), ex_.lease.generation(), ex_.method, is_idempotent(ex_.method), ex_.upstream_head,
                  body_.data());
}

void Http1Session::on_upstream_connect_failed(int err) noexcept {
  const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
  CORRAL_LOG(Warn, "upstream") << "connect to " << app.name << "#" << ex_.slot << " (" << ex_.lease.path()
                               << ") failed: " << std::strerror(err);
  exchange_timer_.cancel();
  ex_.lease.release_failed_connect();
  ex_.slot = -1;
  if (++ex_.connect_attempts < kMaxConnectAttempts) {
    dispatch();
    return;
  }
  respond_error(502, status_reason(502), false);
}

void Http1Session::on_upstream_head(const http1::ResponseHead& head) noexcept {
  ex_.status = head.status;
  ex_.framing = choose_framing(head, ex_.version_minor, ex_.method == "HEAD");
  if (draining_ || host_.draining()) ex_.keep_alive = false;
  if (ex_.framing == ClientFraming::UntilClose) ex_.keep_alive = false;
  append_response_head(head, ex_.framing, ex_.version_minor, ex_.keep_alive, out_);
  ex_.response_started = true;
}

void Http1Session::on_upstream_body(std::string_view data) noexcept {
  if (ex_.framing == ClientFraming::None) return;
  if (ex_.framing == ClientFraming::Chunked) {
    append_hex(out_, data.size());
    out_.append("\r\n", 2);
    out_.append(data);
    out_.append("\r\n", 2);
  } else {
    out_.append(data);
  }
  ex_.bytes_sent += data.size();
  if (out_.size() - out_pos_ > kResponseBufferLimit && !upstream_paused_) {
    upstream_paused_ = true;
    upstream_.pause_reading();
  }
}

void Http1Session::on_upstream_read_done() noexcept { flush(); }

void Http1Session::on_upstream_complete() noexcept {
  ex_.t_upstream_done = host_.loop().now();
  exchange_timer_.cancel();
  // Released before the client has downloaded anything: a slow client never holds a worker.
  ex_.lease.release();
  if (ex_.framing == ClientFraming::Chunked) out_.append("0\r\n\r\n", 5);
  upstream_paused_ = false;
  response_done();
}

void Http1Session::on_upstream_error(const char* why) noexcept {
  const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
  CORRAL_LOG(Warn, "upstream") << app.name << "#" << ex_.slot << ": " << why << " [rid=" << ex_.request_id << "]";
  ex_.t_upstream_done = host_.loop().now();
  exchange_timer_.cancel();
  ex_.lease.release();
  upstream_paused_ = false;
  if (!ex_.response_started) {
    respond_error(502, status_reason(502), false);
    return;
  }
  // Part of the response is out already: the only honest signal left is to abort.
  log_exchange();
  close();
}

void Http1Session::on_exchange_timer() {
  if (closed_) return;
  if (ex_.state == ExchangeState::Queued) {
    const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
    if (!app.dispatcher->cancel(waiter_.get())) {
      // The grant raced with the timeout: it is in flight to us; let it release itself.
      waiter_->detach();
      waiter_.reset();
    }
    respond_error(503, status_reason(503), false, true);
    return;
  }
  if (ex_.state == ExchangeState::Upstream) {
    const AppRuntime& app = ex_.runtime->apps[static_cast<size_t>(ex_.app)];
    CORRAL_LOG(Warn, "upstream") << app.name << "#" << ex_.slot << " did not answer within "
                                 << app.timeout.count() << "ms [rid=" << ex_.request_id << "]";
    host_.report_hung(app.name, ex_.slot, ex_.lease.generation(), ex_.request_id);
    upstream_.abort();
    ex_.t_upstream_done = host_.loop().now();
    ex_.lease.release_hung();
    upstream_paused_ = false;
    if (!ex_.response_started) {
      respond_error(504, status_reason(504), false);
    } else {
      log_exchange();
      close();
    }
  }
}

void Http1Session::on_client_timer() {
  if (closed_) return;
  switch (ex_.state) {
    case ExchangeState::Idle: close(); return;  // keep-alive idle: close silently
    case ExchangeState::ReadingHead:
    case ExchangeState::ReadingBody: respond_error(408, status_reason(408), true); return;
    case ExchangeState::Responding:
    case ExchangeState::Closing:
    case ExchangeState::Upstream:
      // The client stopped reading the response.
      if (out_pos_ < out_.size()) close();
      return;
    case ExchangeState::Queued: return;
  }
}

void Http1Session::respond_error(int status, std::string_view reason, bool close_after, bool retry_after) {
  client_timer_.cancel();
  exchange_timer_.cancel();
  if (close_after || draining_ || host_.draining()) ex_.keep_alive = false;
  ex_.status = status;
  out_.append("HTTP/1.1 ", 9);
  append_decimal(out_, static_cast<uint64_t>(status));
  out_.push_back(' ');
  out_.append(status_reason(status));
  out_.append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  append_decimal(out_, reason.size() + 1);
  out_.append("\r\n", 2);
  if (retry_after) out_.append("Retry-After: 1\r\n");
  if (!ex_.keep_alive) out_.append("Connection: close\r\n");
  out_.append("\r\n", 2);
  out_.append(reason);
  out_.push_back('\n');
  ex_.bytes_sent = reason.size() + 1;
  ex_.response_started = true;
  response_done();
}

void Http1Session::response_done() {
  log_exchange();
  ex_.state = ex_.keep_alive ? ExchangeState::Responding : ExchangeState::Closing;
  flush();
}

void Http1Session::flush() {
  if (closed_) return;
  while (out_pos_ < out_.size()) {
    ssize_t n = ::send(fd_.get(), out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      close();
      return;
    }
    out_pos_ += static_cast<size_t>(n);
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ > kResponseBufferLimit / 2) {
    // Keep the buffer from creeping: drop what is sent.
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  size_t pending = out_.size() - out_pos_;
  if (upstream_paused_ && pending < kResponseBufferLimit / 2) {
    upstream_paused_ = false;
    upstream_.resume_reading();
    if (closed_) return;
  }
  if (pending > 0) {
    // A client that stops reading must not pin the connection forever.
    if (!client_timer_.armed()) client_timer_.arm(ex_.runtime ? ex_.runtime->proxy.client_body_timeout
                                                              : host_.runtime()->proxy.client_body_timeout);
  } else if (ex_.state == ExchangeState::Responding || ex_.state == ExchangeState::Closing) {
    client_timer_.cancel();
    after_flush();
    return;
  }
  update_read_interest();
}

void Http1Session::after_flush() {
  if (ex_.state == ExchangeState::Closing || !ex_.keep_alive) {
    close();
    return;
  }
  next_request();
}

void Http1Session::next_request() {
  ex_.reset();
  if (client_eof_ && in_.empty()) {
    close();
    return;
  }
  if ((draining_ || host_.draining()) && in_.empty()) {
    close();
    return;
  }
  if (in_.empty()) {
    in_.release_if_empty();
    body_.shrink();
  }
  client_timer_.arm(host_.runtime()->proxy.keepalive_timeout);
  update_read_interest();
  if (!in_process_) process();
}

void Http1Session::update_read_interest() {
  if (closed_) return;
  bool reading_request = ex_.state == ExchangeState::Idle || ex_.state == ExchangeState::ReadingHead ||
                         ex_.state == ExchangeState::ReadingBody;
  bool want_read = !client_eof_ && (reading_request || in_.size() < kMaxReadAhead);
  watch_.set(want_read, out_pos_ < out_.size());
}

void Http1Session::log_exchange() {
  AccessRecord r;
  r.client_ip = client_ip_;
  r.method = ex_.method;
  r.target = ex_.target;
  r.version_minor = ex_.version_minor;
  r.status = ex_.status;
  r.bytes_sent = ex_.bytes_sent;
  r.referer = ex_.referer;
  r.user_agent = ex_.user_agent;
  r.request_id = ex_.request_id;
  if (ex_.runtime && ex_.app >= 0 && ex_.slot >= 0) {
    r.app = ex_.runtime->apps[static_cast<size_t>(ex_.app)].name;
    r.slot = ex_.slot;
  }
  auto now = host_.loop().now();
  r.queue_s = secs(ex_.t_queued, ex_.t_sent);
  r.upstream_s = secs(ex_.t_sent, ex_.t_upstream_done);
  r.rt_s = secs(ex_.t_start, now);
  r.time = ::time(nullptr);
  host_.log_access(r);
}

void Http1Session::close() {
  if (closed_) return;
  closed_ = true;
  watch_.set(false, false);
  client_timer_.cancel();
  exchange_timer_.cancel();
  if (ex_.state == ExchangeState::Queued && waiter_ && ex_.runtime && ex_.app >= 0)
    ex_.runtime->apps[static_cast<size_t>(ex_.app)].dispatcher->cancel(waiter_.get());
  if (waiter_) {
    waiter_->detach();
    waiter_.reset();
  }
  upstream_.abort();
  if (ex_.lease) ex_.lease.release();
  fd_.reset();
  host_.session_closed(this);
}

}  // namespace corral::proxy
