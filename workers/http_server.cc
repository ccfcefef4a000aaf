#include "workers/http_server.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/http1/serializer.h"

namespace corral::worker {
namespace {

// The proxy writes a request in one go; a pause this long mid-request means it is gone.
constexpr int kReadStallMs = 30'000;
// The proxy pauses reading while its client is slow (backpressure); allow for that.
constexpr int kWriteStallMs = 120'000;
// The proxy validated the head against its own (configurable) limits and added a few
// forwarding headers; these only stop a runaway peer.
constexpr http1::Limits kLimits{1 << 20, 10'000};

// Waits for `events` on fd; false on timeout or error.
bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

enum class ReadResult { Data, Again, Closed };

ReadResult read_once(int fd, std::string& into) {
  char tmp[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      into.append(tmp, static_cast<size_t>(n));
      return ReadResult::Data;
    }
    if (n == 0) return ReadResult::Closed;
    if (errno == EINTR) continue;
    return (errno == EAGAIN || errno == EWOULDBLOCK) ? ReadResult::Again : ReadResult::Closed;
  }
}

// Reads at least one byte, waiting up to kReadStallMs. False when the peer is gone.
bool read_blocking(int fd, std::string& into) {
  for (;;) {
    switch (read_once(fd, into)) {
      case ReadResult::Data: return true;
      case ReadResult::Closed: return false;
      case ReadResult::Again:
        if (!wait_fd(fd, POLLIN, kReadStallMs)) return false;
        break;
    }
  }
}

}  // namespace

// ---- ResponseWriter ------------------------------------------------------------------------

bool ResponseWriter::write_all(std::string_view a, std::string_view b, std::string_view c) {
  if (broken_) return false;
  iovec iov[3];
  int n = 0;
  for (std::string_view s : {a, b, c})
    if (!s.empty()) iov[n++] = iovec{const_cast<char*>(s.data()), s.size()};
  int first = 0;
  while (first < n) {
    msghdr m{};
    m.msg_iov = iov + first;
    m.msg_iovlen = static_cast<size_t>(n - first);
    ssize_t w = ::sendmsg(fd_, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_fd(fd_, POLLOUT, kWriteStallMs)) continue;
      broken_ = true;
      return false;
    }
    size_t left = static_cast<size_t>(w);
    while (first < n && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < n) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

bool ResponseWriter::send_head(int status, std::span<const std::pair<std::string, std::string>> headers,
                               std::optional<uint64_t> content_length, std::string_view reason) {
  if (enc_.head_sent() || broken_) return false;
  status_ = status;
  buf_.clear();
  enc_.head(buf_, status, reason, headers, content_length);
  return write_all(buf_);
}

bool ResponseWriter::send_body(std::string_view data) {
  if (!enc_.head_sent() || broken_) return false;
  buf_.clear();
  std::string_view suffix = enc_.frame_body(buf_, data);
  if (data.empty()) return true;
  return write_all(buf_, data, suffix);  // the body bytes themselves are never copied
}

bool ResponseWriter::finish() {
  if (broken_) return false;
  buf_.clear();
  if (!enc_.finish(buf_)) {
    broken_ = true;  // announced more than we have
    return false;
  }
  return buf_.empty() || write_all(buf_);
}

bool ResponseWriter::send_simple(int status, std::string_view text) {
  std::pair<std::string, std::string> ct{"Content-Type", "text/plain; charset=utf-8"};
  if (!send_head(status, std::span(&ct, 1), text.size())) return false;
  return send_body(text) && finish();
}

// ---- HttpServer ----------------------------------------------------------------------------

struct HttpServer::Conn {
  UniqueFd fd;
  std::string buf;  ///< unconsumed bytes (a pipelined next request)
  http1::RequestParser parser{kLimits};
  http1::RequestHead head;
  http1::BodyDecoder decoder;
  std::string body, more;
  bool registered = false;  ///< in the epoll set (possibly disarmed by EPOLLONESHOT)
};

namespace {
std::mutex g_conns_mu;
std::unordered_set<void*> g_conns;  // every live Conn, freed at the end of run()
}  // namespace

HttpServer::HttpServer(int listen_fd, int threads, RequestHandler& handler, std::string tag)
    : listen_fd_(listen_fd), threads_(threads < 1 ? 1 : threads), handler_(handler), tag_(std::move(tag)) {}

HttpServer::~HttpServer() = default;

void HttpServer::stop() noexcept {
  stopping_.store(true);
  if (stop_fd_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_.get(), &one, sizeof one);
  }
}

Result<void> HttpServer::run() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return fail_sys("epoll_create1");
  stop_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return fail_sys("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered and never drained: wakes every thread
  ev.data.ptr = &stop_tag_;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev) != 0) return fail_sys("epoll_ctl stop");
  ev.events = EPOLLIN;
  ev.data.ptr = &listen_tag_;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return fail_sys("epoll_ctl listen");
  if (stopping_.load()) return {};

  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads_));
  for (int i = 0; i < threads_; ++i) pool.emplace_back([this] { thread_main(); });
  for (auto& t : pool) t.join();

  std::lock_guard lock(g_conns_mu);
  for (void* p : g_conns) delete static_cast<Conn*>(p);
  g_conns.clear();
  return {};
}

void HttpServer::thread_main() noexcept {
  while (!stopping_.load(std::memory_order_relaxed)) {
    epoll_event ev{};
    int n = ::epoll_wait(epoll_.get(), &ev, 1, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      CORRAL_LOG(Error, tag_) << "epoll_wait: " << std::strerror(errno);
      return;
    }
    if (n == 0) continue;
    if (ev.data.ptr == &stop_tag_) return;
    if (ev.data.ptr == &listen_tag_) {
      accept_some();
      continue;
    }
    Conn* c = static_cast<Conn*>(ev.data.ptr);
    if (ev.events & (EPOLLERR)) {
      drop(c);
      continue;
    }
    serve(c);
  }
}

void HttpServer::accept_some() noexcept {
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      CORRAL_LOG(Warn, tag_) << "accept: " << std::strerror(errno);
    }
    return;
  }
  auto* c = new Conn;
  c->fd.reset(fd);
  {
    std::lock_guard lock(g_conns_mu);
    g_conns.insert(c);
  }
  // Serve at once on this thread: the proxy sends its request right after connecting.
  serve(c);
}

void HttpServer::park(Conn* c) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = c;
  const int op = c->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  c->registered = true;
  if (::epoll_ctl(epoll_.get(), op, c->fd.get(), &ev) != 0) {
    CORRAL_LOG(Warn, tag_) << "epoll_ctl: " << std::strerror(errno);
    drop(c);
  }
}

void HttpServer::drop(Conn* c) noexcept {
  if (c->registered) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c->fd.get(), nullptr);
  {
    std::lock_guard lock(g_conns_mu);
    g_conns.erase(c);
  }
  delete c;
}

void HttpServer::serve(Conn* c) noexcept {
  const int fd = c->fd.get();
  for (;;) {
    // ---- head ----
    c->parser.reset();
    http1::HeadResult hr;
    for (;;) {
      hr = c->parser.parse(c->buf, c->head);
      if (hr.status != http1::ParseStatus::Incomplete) break;
      ReadResult r = read_once(fd, c->buf);
      if (r == ReadResult::Closed) return drop(c);
      if (r == ReadResult::Again) {
        if (c->buf.empty()) return park(c);  // idle between requests: free this thread
        if (!read_blocking(fd, c->buf)) return drop(c);
      }
    }
    if (hr.status == http1::ParseStatus::Error) {
      CORRAL_LOG(Warn, tag_) << "bad request from the proxy: " << hr.error.reason;
      ResponseWriter w(fd, false);
      w.close_after();
      w.send_simple(hr.error.status, "bad request\n");
      return drop(c);
    }
    // ---- body ---- (the head's views point into c->buf: further bytes go to c->more)
    c->body.clear();
    c->more.clear();
    c->decoder.start(c->head.body, c->head.content_length);
    std::string_view in = std::string_view(c->buf).substr(hr.consumed);
    bool in_more = false;
    while (!c->decoder.done()) {
      if (in.empty()) {
        if (in_more) c->more.clear();
        if (!read_blocking(fd, c->more)) return drop(c);
        in = c->more;
        in_more = true;
      }
      auto step = c->decoder.step(in);
      if (step.error) {
        ResponseWriter w(fd, false);
        w.close_after();
        w.send_simple(400, "bad request body\n");
        return drop(c);
      }
      c->body.append(step.data);
      in.remove_prefix(step.consumed);
      if (step.consumed == 0 && !step.done && !c->decoder.done()) in = {};  // needs more input
    }
    std::string leftover(in);

    // ---- handle ----
    const bool is_head = c->head.method == "HEAD";
    ResponseWriter w(fd, is_head);
    if (!c->head.keep_alive || stopping_.load(std::memory_order_relaxed)) w.close_after();
    Request req{c->head, c->body, c->head.body != http1::BodyKind::None};
    handler_.handle(req, w);
    if (!w.head_sent()) {
      w.close_after();
      w.send_simple(500, "no response\n");
    } else {
      w.finish();
    }
    if (!w.keep_alive()) return drop(c);
    c->buf = std::move(leftover);
    if (c->buf.empty()) return park(c);
  }
}

}  // namespace corral::worker
