#include "proxy/frontend/http1_session.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/base/cached_utc.h"
#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/http1/serializer.h"
#include "proxy/tunnel.h"
#include "proxy/upgrade.h"

namespace corral::proxy {
namespace {

// Pipelined bytes read ahead while a request is in flight (beyond this, reading pauses).
constexpr size_t kMaxReadAhead = 64 * 1024;
constexpr size_t kReadSize = 16 * 1024;
// The first read of a request: most heads fit; a read that fills it switches to kReadSize.
constexpr size_t kFirstReadSize = 2 * 1024;
// A static file up to this size is read into the response buffer under TLS (one record).
constexpr uint64_t kTlsInlineFile = 16 * 1024;
// Lingering close (nginx's lingering_timeout / lingering_time): after answering a request
// whose body was not read, keep reading and discarding for at most this long between reads
// and this long in all before closing.
constexpr std::chrono::milliseconds kLingerTimeout{5000};
constexpr std::chrono::milliseconds kLingerTime{30000};

// Adds a header to a finished head ("...\r\n\r\n").
void add_header(std::string& out, std::string_view name, std::string_view value) {
  out.resize(out.size() - 2);
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n\r\n", 4);
}

}  // namespace

Http1Session::Http1Session(SessionHost& host)
    : host_(host),
      client_timer_(host_.loop(), [this] { on_client_timer(); }),
      parser_(host_.runtime()->limits),
      parser_limits_(host_.runtime()->limits),
      ex_(host_, *this) {}

Http1Session::~Http1Session() = default;

void Http1Session::attach(ClientConnection& conn) {
  conn_ = &conn;
  closed_ = client_eof_ = draining_ = in_process_ = linger_ = lingering_ = streaming_ = answered_ = false;
  tunnel_worker_eof_ = tunnel_done_ = tunnel_blocked_ = tunnel_logged_ = tunnel_shut_client_ = false;
  keep_alive_ = true;
  framing_ = ClientFraming::None;
  in_.clear();
  out_.clear();
  out_pos_ = 0;
  file_.reset();
  file_left_ = 0;
  tls_retry_ = 0;
  parser_.reset();
  ex_.reset();
}

void Http1Session::detach() {
  closed_ = true;
  client_timer_.cancel();
  ex_.reset();  // cancels a request in flight (no callbacks)
  in_.clear();
  in_.release_if_empty();
  out_.clear();
  out_pos_ = 0;
  file_.reset();
  file_left_ = 0;
  tls_retry_ = 0;
  if (out_.capacity() > 4096) std::string().swap(out_);
  body_.close();
  body_.shrink();
  streaming_ = false;
  ex_.release_idle_memory();
  conn_ = nullptr;
}

void Http1Session::resume(std::string_view first) {
  client_timer_.arm(host_.runtime()->proxy.keepalive_timeout);
  size_t room = 0;
  char* p = in_.prepare(first.size() > kFirstReadSize ? first.size() : kFirstReadSize, &room);
  std::memcpy(p, first.data(), first.size());
  in_.commit(first.size());
  process();
}

bool Http1Session::draining() const { return draining_ || host_.draining(); }

// Also while the process only announces a drain: the connection ends after this response,
// but one that waits for its next request is not closed under a client that may be sending it.
bool Http1Session::ends_keepalive() const { return draining() || host_.drain_announced(); }

void Http1Session::start() {
  ex_.state = ExchangeState::Idle;
  // A new connection must send its first head within the header timeout.
  client_timer_.arm(host_.runtime()->proxy.client_header_timeout);
  update_read_interest();
  // The connection may hold bytes read while choosing the protocol.
  read_client();
}

void Http1Session::drain() {
  draining_ = true;
  if (lingering_) {
    close();
    return;
  }
  if (ex_.state != ExchangeState::Idle || !in_.empty() || out_pos_ != out_.size()) return;
  // Idle after an answer: closed now. Before its first request (a connection accepted just
  // before the stop), the request may be on its way: it gets a moment, then the Idle timer
  // closes it; once it comes it is answered with Connection: close.
  if (answered_) close();
  else client_timer_.arm(ClientConnection::kFirstRequestGraceOnDrain);
}

void Http1Session::on_io(bool readable, bool writable) {
  if (closed_) return;
  if (writable) flush();
  if (closed_) return;
  if (readable) read_client();
}

void Http1Session::read_client() {
  if (lingering_) {
    linger_read();
    return;
  }
  if (ex_.state == ExchangeState::Tunnel) {
    tunnel_read();
    return;
  }
  size_t room = 0;
  char* p = in_.prepare(in_.capacity() < kReadSize ? kFirstReadSize : kReadSize, &room);
  ssize_t n = conn_->read(p, room);
  if (n < 0) {
    if (errno == EAGAIN) return;
    close();  // reset by peer: nobody is left to answer
    return;
  }
  if (n == 0) {
    client_eof_ = true;
    if (streaming_) {
      // The body streaming to a worker is cut short: that request is aborted.
      body_.fail();
      close();
      return;
    }
    switch (ex_.state) {
      case ExchangeState::Idle:
      case ExchangeState::ReadingHead:
      case ExchangeState::ReadingBody:
        // Nothing was sent to a worker yet.
        close();
        return;
      case ExchangeState::Queued:
      case ExchangeState::Upstream:
        // The client went away while its request waits in the queue or is with a worker
        // (nginx's "client prematurely closed connection"): the request is cancelled in
        // close() and the worker freed now, not when its response is finally written to a
        // socket nobody reads. A client that only half-closed is treated the same, as nginx
        // does: the end of its stream cannot be told from a close.
        close();
        return;
      case ExchangeState::Responding:
      case ExchangeState::Closing:
      case ExchangeState::Tunnel:
        // The worker is done (or the tunnel relays the half-close): a half-closed client may
        // still read the answer; it is closed afterwards.
        update_read_interest();
        return;
    }
    return;
  }
  in_.commit(static_cast<size_t>(n));
  // A full small buffer: more is coming (a large head or a body); read in big steps.
  if (static_cast<size_t>(n) == room && in_.capacity() < kReadSize) in_.reserve(kReadSize);
  process();
}

void Http1Session::process() {
  if (in_process_) return;
  in_process_ = true;
  while (!closed_) {
    ExchangeState s = ex_.state;
    if (streaming_) {
      if (in_.empty() || !read_body()) break;
    } else if (s == ExchangeState::Idle || s == ExchangeState::ReadingHead) {
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
    const auto& rt = host_.runtime();
    if (parser_limits_.max_head_size != rt->limits.max_head_size ||
        parser_limits_.max_header_count != rt->limits.max_header_count) {
      parser_limits_ = rt->limits;
      parser_ = http1::RequestParser(rt->limits);
    } else {
      parser_.reset();  // a head answered early (404, 413, redirect) left it Done
    }
    ex_.begin();
    ex_.state = ExchangeState::ReadingHead;
    // A deadline for the whole head from its first byte: trickling bytes cannot extend it.
    client_timer_.arm(rt->proxy.client_header_timeout);
  }
  auto hr = parser_.parse(in_.readable(), head_);
  if (hr.status == http1::ParseStatus::Incomplete) return false;
  if (hr.status == http1::ParseStatus::Error) {
    CORRAL_LOG(Debug, "http1") << "bad request from " << conn_->client_ip() << ": " << hr.error.reason;
    ex_.reject_reason = hr.error.reason;
    respond_error(hr.error.status, true);
    return false;
  }
  head_accepted(head_, hr.consumed);
  return !closed_ && (ex_.state == ExchangeState::ReadingBody || ex_.state == ExchangeState::Idle || streaming_);
}

void Http1Session::head_accepted(const http1::RequestHead& head, size_t head_size) {
  const Runtime& rt = *ex_.runtime;
  ex_.method.assign(head.method);
  ex_.target.assign(head.target);
  ex_.host.assign(head.host);
  std::string_view traceparent;
  int traceparents = 0;
  for (const auto& h : head.headers) {
    if (iequals(h.name, "user-agent")) ex_.user_agent.assign(h.value);
    else if (iequals(h.name, "referer")) ex_.referer.assign(h.value);
    else if (iequals(h.name, "traceparent") && traceparents++ == 0) traceparent = h.value;
  }
  ex_.set_trace(traceparent, traceparents);
  ex_.version_minor = head.version_minor;
  keep_alive_ = head.keep_alive && !ends_keepalive();
  ex_.had_body = head.body != http1::BodyKind::None;

  // Max-Forwards 0, CONNECT, OPTIONS * (the parser allows "*" on OPTIONS only).
  if (LocalAnswer a = local_answer(head.method, head.target, max_forwards_fields(head)); a.status) {
    in_.consume(head_size);
    if (*a.reason) ex_.reject_reason = a.reason;
    // After a CONNECT head come tunnel bytes, after a 400 nothing can be trusted: close.
    respond_error(a.status, ex_.had_body || head.method == "CONNECT" || a.status == 400);
    return;
  }
  const ListenerRuntime* l = conn_->listener();
  if (l && l->redirect_https && !conn_->tls()) {
    respond_redirect(head);
    in_.consume(head_size);
    return;
  }
  if (head.body == http1::BodyKind::ContentLength && head.content_length > rt.proxy.max_body_size) {
    in_.consume(head_size);
    respond_error(413, true);
    return;
  }
  if (ex_.route(head.host, head.target, l) < 0) {
    in_.consume(head_size);
    // The body (if any) is not read: the connection cannot be reused.
    respond_error(404, ex_.had_body);
    return;
  }
  if (auto which = ex_.captured_fields(); which != statics::StaticRequest::Fields::None)
    for (const auto& h : head.headers) ex_.static_req.capture(h.name, h.value, which);
  std::string& xff = forwarded_for_scratch();
  xff.clear();
  if (conn_->forwarded_trusted()) {
    for (const auto& h : head.headers)
      if (iequals(h.name, "x-forwarded-for")) append_forwarded_for(xff, h.value);
    if (!xff.empty()) ex_.forwarded_client.assign(forwarded_client(xff, conn_->client_ip(), ex_.runtime->trusted_proxies));
  }
  if (ex_.needs_upstream_head()) {
    Forwarding fwd;
    fwd.client_ip = conn_->client_ip();
    fwd.trusted_peer = conn_->forwarded_trusted();
    fwd.forwarded_for = xff;
    fwd.real_ip = ex_.forwarded_client;
    fwd.proto = conn_->tls() ? "https" : "http";
    fwd.host = head.host;
    fwd.request_id = ex_.request_id;
    fwd.traceparent = ex_.traceparent;
    fwd.keep_tracestate = ex_.trace_from_client;
    fwd.server_port = conn_->server_port();
    fwd.client_port = conn_->client_port();
    // corral-worker maps the prefix onto SCRIPT_NAME; HTTP apps never asked for it.
    if (const AppRuntime* a = ex_.routed_app(); a && a->kind == conf::AppKind::Cgi) fwd.prefix = ex_.route_prefix;
    if (const AppRuntime* a = ex_.routed_app()) fwd.upgrade = forwarded_upgrade(head, a->kind);
    ex_.upgrade = !fwd.upgrade.empty();
    append_request_head(head, fwd, ex_.upstream_head);
  }
  const http1::BodyKind kind = head.body;
  const uint64_t length = head.content_length;
  const bool expect_continue = head.expect_continue;
  in_.consume(head_size);  // head views are dead from here on
  parser_.reset();
  begin_body(kind, length, expect_continue);
}

void Http1Session::begin_body(http1::BodyKind kind, uint64_t length, bool expect_continue) {
  const Runtime& rt = *ex_.runtime;
  const AppRuntime* app = ex_.routed_app();
  // Streamed only where the worker can take it as it comes: a FastCGI or CGI app needs
  // CONTENT_LENGTH up front, so a chunked body of unknown length is buffered for them (as
  // nginx does for fastcgi_request_buffering off).
  const bool streaming = app && !app->request_buffering && ex_.had_body &&
                         (kind == http1::BodyKind::ContentLength ||
                          app->kind == conf::AppKind::Http || app->kind == conf::AppKind::Wsgi);
  body_.reset(RequestBody::settings(rt, host_.counters(), streaming));
  if (!ex_.had_body || (kind == http1::BodyKind::ContentLength && length == 0)) {
    body_complete();
    return;
  }
  decoder_.start(kind, length);
  ex_.state = ExchangeState::ReadingBody;
  // Expect: 100-continue (RFC 9110 §10.1.1): the route is known and the declared length
  // within max_body_size (else 404 or 413 went out instead, and no body is read), so the
  // proxy will take the body: ask for it. Not when part of it is here already, and never
  // to an HTTP/1.0 client (the parser ignores Expect there). Never forwarded to the worker.
  if (expect_continue && ex_.version_minor >= 1 && in_.empty()) {
    out_.append("HTTP/1.1 100 Continue\r\n\r\n");
    flush();
    if (closed_) return;
  }
  // The body's clock starts here, buffered or streamed.
  body_started_ = host_.loop().now();
  body_bytes_read_ = 0;
  client_timer_.arm(rt.proxy.client_body_timeout);
  if (streaming) {
    streaming_ = true;
    body_.set_writer(this);
    ex_.body_chunked = kind == http1::BodyKind::Chunked;
    if (ex_.body_chunked) finish_request_head_chunked(ex_.upstream_head);
    else finish_request_head(ex_.upstream_head, length, true);
    if (metrics::LoopCounters* lc = host_.counters()) lc->bodies_streamed.add();
    // The worker is chosen now and gets the body as it arrives.
    ex_.submit(&body_, conn_->client_ip(), conn_->tls());
  }
}

bool Http1Session::read_body() {
  if (in_.empty()) return false;
  const auto& proxy = ex_.runtime->proxy;
  while (!in_.empty()) {
    auto st = decoder_.step(in_.readable());
    if (st.error) {
      ex_.reject_reason = st.why.reason;
      body_failed(st.why.status ? st.why.status : 400);
      return false;
    }
    if (!st.data.empty()) {
      switch (body_.append(st.data)) {
        case RequestBody::Status::Ok: break;
        case RequestBody::Status::TooLarge:
          ex_.reject_reason = "body too large";
          body_failed(413);
          return false;
        case RequestBody::Status::TempFileError:  // logged (rate-limited) and counted by RequestBody
          ex_.reject_reason = "body temp file error";
          body_failed(500);
          return false;
      }
    }
    in_.consume(st.consumed);
    body_bytes_read_ += st.consumed;
    if (st.done || decoder_.done()) {
      if (streaming_) {
        streaming_ = false;
        body_.finish();
        client_timer_.cancel();
        return !closed_;
      }
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
      body_failed(408);
      return false;
    }
  }
  // A streamed body waiting for a slow worker is not the client's pause.
  if (body_.full()) client_timer_.cancel();
  else client_timer_.arm(proxy.client_body_timeout);
  return false;
}

void Http1Session::body_failed(int status) {
  if (streaming_) {
    // The worker has part of the body: its request is aborted (it sees the connection
    // close), and the client gets the answer unless the worker's response has started.
    body_.fail();
    bool started = ex_.response_started;
    ex_.cancel();
    if (started) {
      close();
      return;
    }
    ex_.state = ExchangeState::ReadingBody;  // answered while the body is unread: linger
  }
  respond_error(status, true);
}

void Http1Session::on_body_drained() noexcept {
  if (closed_ || !streaming_) return;
  client_timer_.arm(ex_.runtime->proxy.client_body_timeout);
  update_read_interest();
}

void Http1Session::body_complete() {
  if (ex_.needs_upstream_head()) finish_request_head(ex_.upstream_head, body_.size(), ex_.had_body);
  client_timer_.cancel();
  body_.finish();
  ex_.submit(&body_, conn_->client_ip(), conn_->tls());
}

void Http1Session::on_response_head(const http1::ResponseHead& head) noexcept {
  framing_ = choose_framing(head, ex_.version_minor, ex_.method == "HEAD");
  if (ends_keepalive()) keep_alive_ = false;
  if (framing_ == ClientFraming::UntilClose) keep_alive_ = false;
  append_response_head(head, framing_, ex_.version_minor, keep_alive_, out_);
  const ListenerRuntime* l = conn_->listener();
  if (l && conn_->tls() && !l->hsts.empty()) add_header(out_, "Strict-Transport-Security", l->hsts);
  // A HEAD response's Content-Length is the GET's: no body follows it.
  if (framing_ == ClientFraming::ContentLength && ex_.method == "HEAD") framing_ = ClientFraming::None;
}

void Http1Session::on_response_interim(const http1::ResponseHead& head) noexcept {
  // RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client. Hop-by-hop fields are removed as in a
  // final head; an interim response has no framing.
  if (ex_.version_minor == 0 || head.status == 101) return;
  append_interim_head(head, out_);
  flush();
}

void Http1Session::on_response_body(std::string_view data) noexcept {
  if (framing_ == ClientFraming::None || framing_ == ClientFraming::Empty) return;
  if (framing_ == ClientFraming::Chunked) {
    if (data.empty()) return;  // a chunk of size 0 would end the body
    http1::append_chunk_header(out_, data.size());
    out_.append(data);
    http1::append_chunk_end(out_);
  } else {
    out_.append(data);
  }
  if (out_.size() - out_pos_ > kResponseBufferLimit) ex_.pause_upstream();
}

void Http1Session::on_response_flush() noexcept { flush(); }

void Http1Session::on_response_complete() noexcept {
  if (framing_ == ClientFraming::Chunked) http1::append_last_chunk(out_);
  response_done();
}

void Http1Session::on_response_file(std::shared_ptr<const statics::OpenFile> file, uint64_t offset,
                                    uint64_t length) noexcept {
  if (framing_ != ClientFraming::ContentLength) return;
  if (conn_->tls() && length <= kTlsInlineFile) {
    // A small file under TLS goes into the head's buffer: one TLS record, one write.
    size_t at = out_.size();
    out_.resize(at + length);
    ssize_t r;
    do {
      r = ::pread(file->fd.get(), out_.data() + at, length, static_cast<off_t>(offset));
    } while (r < 0 && errno == EINTR);
    if (r == static_cast<ssize_t>(length)) return;
    out_.resize(at);  // shrank or failed: the connection is closed after the head
    keep_alive_ = false;
    return;
  }
  file_ = std::move(file);
  file_off_ = offset;
  file_left_ = length;
  tls_retry_ = 0;
}

void Http1Session::on_exchange_failed(int status, bool retry_after) noexcept {
  if (status != 0) {
    respond_error(status, false, retry_after);
    return;
  }
  // Part of the response is out already: the only honest signal left is to abort.
  ex_.log(conn_->client_ip());
  close();
}

void Http1Session::on_client_timer() {
  if (closed_) return;
  if (lingering_) {
    close();  // the client went quiet: its answer is read or it never will be
    return;
  }
  if (streaming_ && !body_.full()) {
    body_failed(408);  // the client paused its streamed body too long
    return;
  }
  switch (ex_.state) {
    case ExchangeState::Idle: close(); return;  // keep-alive idle: close silently
    case ExchangeState::ReadingHead:
    case ExchangeState::ReadingBody: respond_error(408, true); return;
    case ExchangeState::Responding:
    case ExchangeState::Closing:
    case ExchangeState::Upstream:
      // The client stopped reading the response, unless the socket's send queue shrank.
      if (out_pos_ < out_.size() || file_left_ > 0) {
        int q = 0;
        if (stall_outq_ > 0 && ::ioctl(conn_->fd(), SIOCOUTQ, &q) == 0 && q < stall_outq_) {
          arm_send_stall();
          return;
        }
        close();
      }
      return;
    case ExchangeState::Queued:
    case ExchangeState::Tunnel:  // the tunnel has its own idle timeout
      return;
  }
}

void Http1Session::arm_send_stall() {
  int q = 0;
  stall_outq_ = ::ioctl(conn_->fd(), SIOCOUTQ, &q) == 0 ? q : -1;
  client_timer_.arm(ex_.runtime ? ex_.runtime->proxy.client_body_timeout : host_.runtime()->proxy.client_body_timeout);
}

void Http1Session::respond_redirect(const http1::RequestHead& head) {
  client_timer_.cancel();
  // The body is not read: the connection cannot be reused when there is one.
  if (ex_.had_body || ends_keepalive()) keep_alive_ = false;
  ex_.status = 308;
  std::string_view host = head.host;
  // Host without its port; the https port of the TLS listener (if not 443) is added.
  if (!host.empty() && host.front() == '[') {
    size_t e = host.find(']');
    if (e != std::string_view::npos) host = host.substr(0, e + 1);
  } else if (size_t c = host.rfind(':'); c != std::string_view::npos) {
    host = host.substr(0, c);
  }
  out_.append("HTTP/1.1 308 Permanent Redirect\r\nLocation: https://");
  out_.append(host);
  out_.append(host_.https_port());
  out_.append(head.target.empty() || head.target.front() != '/' ? std::string_view("/") : head.target);
  out_.append("\r\nContent-Length: 0\r\nDate: ");
  out_.append(http_date_now());
  out_.append("\r\n", 2);
  if (!keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n", 2);
  ex_.response_started = true;
  response_done();
}

void Http1Session::respond_error(int status, bool close_after, bool retry_after) {
  client_timer_.cancel();
  if (close_after || ends_keepalive()) keep_alive_ = false;
  std::string_view reason = http1::reason_phrase(status);
  ex_.status = status;
  out_.append("HTTP/1.1 ", 9);
  append_decimal(out_, static_cast<uint64_t>(status));
  out_.push_back(' ');
  out_.append(reason);
  out_.append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  append_decimal(out_, reason.size() + 1);
  out_.append("\r\n", 2);
  out_.append("Date: ", 6);
  out_.append(http_date_now());
  out_.append("\r\n", 2);
  if (retry_after) out_.append("Retry-After: 1\r\n");
  if (!keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n", 2);
  out_.append(reason);
  out_.push_back('\n');
  ex_.bytes_sent = reason.size() + 1;
  ex_.response_started = true;
  response_done();
}

void Http1Session::response_done() {
  // Answered before its request was read to the end (an error, a redirect): the client may
  // still be sending. Closing with unread bytes makes the kernel send a reset, which can
  // destroy the answer before the client reads it (curl: "Send failure: Connection reset").
  // A body still streaming in when the worker's answer is complete is not read to its end
  // either: the connection closes after the answer (lingering).
  if (streaming_) keep_alive_ = false;
  linger_ = !keep_alive_ && !client_eof_ &&
            (ex_.state == ExchangeState::ReadingHead || ex_.state == ExchangeState::ReadingBody || streaming_);
  // The request is answered: what the client still sends is no longer a body (no 408, 413
  // or 400 for it, and a half-close no longer aborts anything); lingering discards it.
  streaming_ = false;
  body_.close();  // the temp file goes as soon as the request is over
  ex_.log(conn_->client_ip());
  ex_.state = keep_alive_ ? ExchangeState::Responding : ExchangeState::Closing;
  flush();
}

void Http1Session::flush() {
  if (closed_ || lingering_) return;
  bool progress = false;
  while (out_pos_ < out_.size()) {
    ssize_t n = conn_->write(out_.data() + out_pos_, out_.size() - out_pos_, file_left_ > 0);
    if (n < 0) {
      if (errno == EAGAIN) break;
      close();
      return;
    }
    out_pos_ += static_cast<size_t>(n);
    progress = progress || n > 0;
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    if (file_left_ > 0 && !send_file()) return;
  } else if (out_pos_ > kResponseBufferLimit / 2) {
    // Keep the buffer from creeping: drop what is sent.
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  size_t pending = out_.size() - out_pos_ + static_cast<size_t>(file_left_ > 0);
  if (ex_.state == ExchangeState::Tunnel) {
    if (ex_.upstream_paused() && pending < kTunnelBufferLimit / 2) {
      ex_.resume_upstream();
      if (closed_) return;
    }
    if (pending == 0) {
      tunnel_after_flush();
      return;
    }
    update_read_interest();
    return;
  }
  if (ex_.upstream_paused() && pending < kResponseBufferLimit / 2) {
    ex_.resume_upstream();
    if (closed_) return;
  }
  if (pending > 0) {
    // A client that stops reading must not pin the connection forever; one that reads slowly
    // but steadily keeps it: the deadline runs from the last bytes the client took.
    if (progress || !client_timer_.armed()) arm_send_stall();
  } else if (ex_.state == ExchangeState::Responding || ex_.state == ExchangeState::Closing) {
    client_timer_.cancel();
    after_flush();
    return;
  }
  update_read_interest();
}

void Http1Session::after_flush() {
  if (ex_.state == ExchangeState::Closing || !keep_alive_) {
    if (linger_) start_linger();
    else close();
    return;
  }
  next_request();
}

void Http1Session::start_linger() {
  // The answer is out: half-close, then read and discard what the client still sends until
  // it closes, falls silent for kLingerTimeout, or kLingerTime has passed.
  lingering_ = true;
  conn_->shutdown_write();
  linger_until_ = host_.loop().now() + kLingerTime;
  client_timer_.arm(kLingerTimeout);
  conn_->want(true, false);
  linger_read();
}

void Http1Session::linger_read() {
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = conn_->read(buf, sizeof buf);
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      close();  // the client closed (or reset): nothing is lost any more
      return;
    }
  }
  if (host_.loop().now() >= linger_until_) {
    close();
    return;
  }
  client_timer_.arm(kLingerTimeout);
}

void Http1Session::next_request() {
  answered_ = true;
  ex_.reset();
  framing_ = ClientFraming::None;
  keep_alive_ = true;
  if (client_eof_ && in_.empty()) {
    close();
    return;
  }
  if (draining() && in_.empty()) {
    close();
    return;
  }
  wait_for_next_request();
  if (!in_process_) process();
}

void Http1Session::wait_for_next_request() {
  auto keepalive = host_.runtime()->proxy.keepalive_timeout;
  if (in_.empty() && conn_->can_park()) {
    // Nothing read ahead: the connection waits without this session (no system call either
    // way). From here on this object is detached; callers only unwind.
    conn_->park(keepalive);
    return;
  }
  client_timer_.arm(keepalive);
  update_read_interest();
}

void Http1Session::update_read_interest() {
  if (closed_ || lingering_) return;
  if (ex_.state == ExchangeState::Tunnel) {
    conn_->want(!client_eof_ && !tunnel_blocked_ && !tunnel_done_, out_pos_ < out_.size());
    return;
  }
  bool reading_request = ex_.state == ExchangeState::Idle || ex_.state == ExchangeState::ReadingHead ||
                         ex_.state == ExchangeState::ReadingBody || streaming_;
  bool want_read = !client_eof_ && (reading_request || in_.size() < kMaxReadAhead);
  // A streamed body waits while the worker has not taken what memory holds (backpressure).
  if (streaming_ && body_.full()) want_read = false;
  conn_->want(want_read, out_pos_ < out_.size() || file_left_ > 0);
}

void Http1Session::close() {
  if (closed_) return;
  closed_ = true;
  client_timer_.cancel();
  if (ex_.state == ExchangeState::Tunnel && !tunnel_logged_) {
    tunnel_logged_ = true;
    ex_.cancel();  // settles the byte count
    ex_.log(conn_->client_ip());
  }
  if (streaming_) body_.fail();
  // A request still queued or with its worker is cancelled and logged (499 when no response
  // head came yet); one whose answer was complete was logged already.
  ex_.client_gone(conn_->client_ip());
  file_.reset();
  file_left_ = 0;
  body_.close();
  conn_->close();
}

}  // namespace corral::proxy

// ---- tunnels (after the worker's 101) --------------------------------------------------------

namespace corral::proxy {

void Http1Session::on_upgrade(const http1::ResponseHead& head) noexcept {
  client_timer_.cancel();  // the tunnel's idle timeout takes over
  keep_alive_ = false;
  append_switching_head(head, out_);
  // Bytes the client sent after its request head (it may start talking before the 101) go
  // to the worker first.
  if (!in_.empty()) {
    if (!ex_.tunnel_send(in_.readable())) tunnel_blocked_ = true;
    in_.clear();
  }
  // A client that half-closed while waiting for the switch: the worker learns it too.
  if (client_eof_) ex_.tunnel_client_eof();
  flush();
}

void Http1Session::on_tunnel_data(std::string_view data) noexcept {
  out_.append(data);
  if (out_.size() - out_pos_ > kTunnelBufferLimit) ex_.pause_upstream();
}

void Http1Session::on_tunnel_eof() noexcept {
  tunnel_worker_eof_ = true;
  if (out_pos_ == out_.size()) tunnel_after_flush();
}

void Http1Session::on_tunnel_writable() noexcept {
  tunnel_blocked_ = false;
  if (!closed_) update_read_interest();
}

void Http1Session::on_tunnel_closed(TunnelEnd end, const char* why) noexcept {
  if (closed_) return;
  if (end != TunnelEnd::Closed) {
    CORRAL_LOG(Debug, "tunnel") << "closing the tunnel of " << conn_->client_ip() << ": " << why
                                << " [rid=" << ex_.request_id << "]";
    close();
    return;
  }
  tunnel_done_ = true;
  if (out_pos_ == out_.size()) tunnel_after_flush();
  else update_read_interest();
}

void Http1Session::tunnel_after_flush() {
  if (closed_) return;
  if (tunnel_done_) {
    close();  // both directions are closed and everything is out
    return;
  }
  if (tunnel_worker_eof_ && !tunnel_shut_client_) {
    // The worker stopped sending: so does the proxy towards the client (half-close); the
    // client may still send until it closes too.
    tunnel_shut_client_ = true;
    conn_->shutdown_write();
  }
  update_read_interest();
}

void Http1Session::tunnel_read() {
  char buf[16 * 1024];
  for (int round = 0; round < 4 && !closed_ && !tunnel_blocked_ && !client_eof_; ++round) {
    ssize_t n = conn_->read(buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN) break;
      close();  // reset by the client
      return;
    }
    if (n == 0) {
      client_eof_ = true;
      ex_.tunnel_client_eof();
      break;
    }
    if (!ex_.tunnel_send(std::string_view(buf, static_cast<size_t>(n)))) tunnel_blocked_ = true;
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  if (!closed_) update_read_interest();
}

}  // namespace corral::proxy
