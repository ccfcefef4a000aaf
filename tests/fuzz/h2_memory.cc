// See h2_memory.h. Link seam: these definitions stand in for proxy/client_connection.cc and
// proxy/upstream/upstream_client.cc, which fuzz_h2 does not link (the static library's
// members are only pulled in for symbols nothing else defines).
#include "tests/fuzz/h2_memory.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "proxy/client_connection.h"
#include "proxy/frontend/http1_session.h"
#include "proxy/frontend/http2_session.h"
#include "proxy/request_body.h"
#include "proxy/upstream/upstream_client.h"

namespace corral::proxy {

namespace fuzz {

MemoryWire& wire() {
  static MemoryWire w;
  return w;
}

void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_h2: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace fuzz

using fuzz::wire;

// ---- ClientConnection in memory ----------------------------------------------------------

ClientConnection::ClientConnection(SessionHost& host, UniqueFd fd, std::string client_ip,
                                   std::shared_ptr<const ListenerRuntime> listener)
    : host_(host),
      fd_(std::move(fd)),
      client_ip_(std::move(client_ip)),
      listener_(std::move(listener)),
      watch_(host.loop(), -1, [](bool, bool) {}),
      timer_(host.loop(), [] {}) {
  // A lambda of a member function may call the private session.
  wire().pump = [this](bool r, bool w) {
    if (session_ && !closed_) session_->on_io(r, w);
  };
}

ClientConnection::~ClientConnection() {
  session_.reset();
  wire().pump = nullptr;
}

void ClientConnection::start() {
  phase_ = Phase::Session;
  protocol_ = "h2";
  session_ = make_http2_session(*this);
  session_->start();
}

void ClientConnection::drain() {
  draining_ = true;
  if (session_) session_->drain();
}

void ClientConnection::close() {
  if (closed_) return;
  closed_ = true;
  wire().closed = true;
  host_.connection_closed(this);
}

ssize_t ClientConnection::read(char* buf, size_t len) {
  if (closed_) {
    errno = EBADF;
    return -1;
  }
  auto& w = wire();
  if (w.in.empty()) {
    if (w.eof) return 0;
    errno = EAGAIN;
    return -1;
  }
  size_t n = std::min(len, w.in.size());
  std::memcpy(buf, w.in.data(), n);
  w.in.remove_prefix(n);
  return static_cast<ssize_t>(n);
}

ssize_t ClientConnection::write(const char* buf, size_t len, bool) {
  if (closed_ || wire().write_shut) {
    errno = closed_ ? EBADF : EPIPE;
    return -1;
  }
  wire().out.append(buf, len);
  return static_cast<ssize_t>(len);
}

ssize_t ClientConnection::send_file(int, off_t&, size_t) {
  errno = EBADF;
  return -1;
}

void ClientConnection::want(bool read, bool write) {
  want_read_ = read;
  want_write_ = write;
  wire().want_read = read;
  wire().want_write = write;
}

void ClientConnection::shutdown_write() { wire().write_shut = true; }

bool ClientConnection::can_park() const { return false; }

void ClientConnection::park(std::chrono::milliseconds) {}

uint16_t ClientConnection::client_port() { return 40000; }
uint16_t ClientConnection::server_port() { return 8080; }

// ---- the in-memory worker ----------------------------------------------------------------

namespace {

using fuzz::fail;

/// Answers every request from memory after checking it. The answer depends on the target,
/// so seeds can reach each kind: "/...err" fails before the head, "/...cut" after it, "/...204"
/// and "/...304" have no body, "/...chunk" has a body of unknown length, "/...big" one larger
/// than the session's per-stream buffer, anything else a small body with a Content-Length.
class MemoryWorker final : public UpstreamClient, private BodyReader {
 public:
  MemoryWorker(ev::Loop& loop, UpstreamHandler& handler)
      : handler_(handler), timer_(loop, [this] { step(); }) {}
  ~MemoryWorker() override { abort(); }

  void start(const UpstreamRequest& req) override {
    abort();
    ++wire().forwarded;
    head_.assign(req.head);
    http1::RequestParser parser;
    http1::RequestHead h;
    http1::HeadResult r = parser.parse(head_, h);
    if (r.status != http1::ParseStatus::Done) fail("forwarded head does not parse", head_);
    if (r.consumed != head_.size()) fail("forwarded head has bytes after it", head_);
    // An extended CONNECT (RFC 8441) is forwarded as a GET with Upgrade.
    if (h.method != req.method && !req.upgrade) fail("forwarded method differs", head_);
    if (h.version_minor != 1) fail("forwarded head is not HTTP/1.1", head_);
    if (h.host.empty()) fail("forwarded head without Host", head_);
    if (req.chunked != (h.body == http1::BodyKind::Chunked)) fail("chunked flag and head disagree", head_);
    if (req.upgrade && h.upgrade.empty()) fail("upgrade request without Upgrade", head_);
    for (const auto& f : h.headers) {
      if (iequals(f.name, "connection") && !req.upgrade) fail("forwarded Connection field", head_);
      if (f.name.empty() || f.name[0] == ':') fail("forwarded pseudo-header", head_);
    }
    chunked_ = req.chunked;
    has_length_ = h.body == http1::BodyKind::ContentLength;
    length_ = h.content_length;
    head_request_ = h.method == "HEAD";
    std::string_view t = h.target;
    kind_ = t.ends_with("err")     ? Kind::Error
            : t.ends_with("cut")   ? Kind::Cut
            : t.ends_with("204")   ? Kind::NoContent
            : t.ends_with("304")   ? Kind::NotModified
            : t.ends_with("chunk") ? Kind::Chunked
            : t.ends_with("big")   ? Kind::Big
                                   : Kind::Small;
    body_ = req.source;
    if (!body_) {
      received_ = 0;
    } else {
      body_->set_reader(this);
    }
    read_ = 0;
    sent_ = 0;
    head_sent_ = false;
    state_ = State::Body;
    timer_.arm(std::chrono::milliseconds(0));
  }

  void abort() override {
    ++generation_;  // a callback in progress sees it and returns
    if (body_) body_->set_reader(nullptr);
    body_ = nullptr;
    timer_.cancel();
    state_ = State::Idle;
    paused_ = false;
  }
  void pause_reading() override { paused_ = true; }
  void resume_reading() override {
    paused_ = false;
    if (state_ == State::Sending) timer_.arm(std::chrono::milliseconds(0));
  }

 private:
  enum class State { Idle, Body, Sending };
  enum class Kind { Small, Chunked, Big, NoContent, NotModified, Error, Cut };

  void on_body_more() noexcept override {
    if (state_ == State::Body) timer_.arm(std::chrono::milliseconds(0));
  }

  void step() {
    if (state_ == State::Body && !take_body()) return;
    if (state_ == State::Sending) send();
  }

  // Reads what the body holds; true once it is complete (and checked).
  bool take_body() {
    if (body_) {
      for (;;) {
        RequestBody::Piece p = body_->peek(read_, 16 * 1024);
        if (p.len == 0) break;
        read_ += p.len;
      }
      body_->release(read_);  // a no-op for a buffered body
      received_ = read_;
      if (body_->failed()) {
        abort();
        handler_.on_upstream_error("request body failed");
        return false;
      }
      if (!body_->complete()) return false;
      if (received_ != body_->size()) fail("body bytes read differ from its size", head_);
    }
    if (has_length_ && received_ != length_) fail("body size differs from Content-Length", head_);
    if (!has_length_ && !chunked_ && received_ != 0) fail("a body the head does not announce", head_);
    state_ = State::Sending;
    return true;
  }

  void send() {
    static const std::string kBig(300 * 1024, 'b');
    static const std::string kSmall = "hello from memory\n";
    const unsigned generation = generation_;
    auto gone = [&] { return generation != generation_ || state_ != State::Sending; };
    if (sent_ == 0 && !head_sent_) {
      if (kind_ == Kind::Error) {
        abort();
        handler_.on_upstream_error("worker failed");
        return;
      }
      http1::ResponseHead h;
      h.status = kind_ == Kind::NoContent ? 204 : kind_ == Kind::NotModified ? 304 : 200;
      h.reason = "OK";
      h.headers.push_back({"Content-Type", "text/plain"});
      h.headers.push_back({"X-Worker", "memory"});
      const std::string& body = kind_ == Kind::Big || kind_ == Kind::Cut ? kBig : kSmall;
      if (h.status != 200 || head_request_) {
        h.body = http1::BodyKind::None;
      } else if (kind_ == Kind::Chunked) {
        h.body = http1::BodyKind::Chunked;
      } else {
        h.body = http1::BodyKind::ContentLength;
        h.content_length = body.size();
        h.has_content_length = true;
      }
      total_ = h.body == http1::BodyKind::None ? 0 : body.size();
      head_sent_ = true;
      handler_.on_upstream_head(h);
      if (gone()) return;
    }
    const std::string& body = kind_ == Kind::Big || kind_ == Kind::Cut ? kBig : kSmall;
    while (sent_ < total_ && !paused_) {
      if (kind_ == Kind::Cut && sent_ > 0) {
        abort();
        handler_.on_upstream_error("worker closed mid-body");
        return;
      }
      size_t n = std::min<size_t>(16 * 1024, total_ - sent_);
      handler_.on_upstream_body(std::string_view(body).substr(sent_, n));
      if (gone()) return;
      sent_ += n;
    }
    handler_.on_upstream_read_done();
    if (gone() || paused_) return;
    if (sent_ < total_) return;
    state_ = State::Idle;
    head_sent_ = false;
    body_ = nullptr;
    ++wire().answered;
    handler_.on_upstream_complete();
  }

  UpstreamHandler& handler_;
  ev::Timer timer_;
  State state_ = State::Idle;
  Kind kind_ = Kind::Small;
  std::string head_;
  RequestBody* body_ = nullptr;
  bool chunked_ = false, has_length_ = false, head_request_ = false, paused_ = false, head_sent_ = false;
  uint64_t length_ = 0, received_ = 0, read_ = 0;
  size_t sent_ = 0, total_ = 0;
  unsigned generation_ = 0;
};

}  // namespace

std::unique_ptr<UpstreamClient> make_upstream_client(conf::AppKind, UpstreamPool& pool, UpstreamHandler& handler) {
  return std::make_unique<MemoryWorker>(pool.loop(), handler);
}

}  // namespace corral::proxy
