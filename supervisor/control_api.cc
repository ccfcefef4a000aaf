#include "supervisor/control_api.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/base/log.h"
#include "common/http1/parser.h"
#include "common/net/socket.h"
#include "supervisor/listeners.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "control";
constexpr size_t kMaxBody = 64 * 1024;
constexpr size_t kMaxConnections = 64;
constexpr std::chrono::milliseconds kRequestTimeout{10'000};
// A deferred answer (reload waits for the new generation) may take up to a boot_timeout.
constexpr std::chrono::milliseconds kDeferredTimeout{3'600'000};

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 503: return "Service Unavailable";
    default: return status < 400 ? "OK" : "Error";
  }
}

std::string error_body(std::string_view message) {
  std::string s = "{\"error\":\"";
  for (char c : message) {
    if (c == '"' || c == '\\') s.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) s.push_back(c);
  }
  return s + "\"}";
}
}  // namespace

struct ControlApi::Connection {
  UniqueFd fd;
  std::unique_ptr<ev::FdWatch> watch;
  std::unique_ptr<ev::Timer> timeout;
  std::string in;
  std::string out;
  size_t written = 0;
  http1::RequestParser parser;
  http1::RequestHead head;
  bool head_done = false;
  size_t body_start = 0;
  bool responding = false;
  uint64_t id = 0;
};

std::string render_response(const ControlApi::Response& r) {
  std::string s = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  s += "Content-Type: application/json\r\n";
  s += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  s += "Connection: close\r\n\r\n";
  s += r.body;
  return s;
}

ControlApi::ControlApi(ev::Loop& loop, Handler handler) : loop_(loop), handler_(std::move(handler)) {}

ControlApi::~ControlApi() { close(); }

Result<void> ControlApi::listen(const std::string& path) {
  auto fd = net::listen_unix(path, 64, 0600);
  if (!fd) return fail(fd.error());
  path_ = path;
  accept_watch_.reset();
  listen_fd_ = std::move(*fd);
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    path_dev_ = st.st_dev;
    path_ino_ = st.st_ino;
  }
  accept_watch_ = std::make_unique<ev::FdWatch>(loop_, listen_fd_.get(), [this](bool, bool) { on_accept(); });
  accept_watch_->set(true, false);
  return {};
}

bool ControlApi::intact() const {
  if (!listen_fd_) return true;  // not listening: nothing to keep
  struct stat st {};
  return ::stat(path_.c_str(), &st) == 0 && st.st_ino == path_ino_ && st.st_dev == path_dev_;
}

Result<void> ControlApi::rebind() {
  if (path_.empty()) return fail(Errc::InvalidInput, "control socket was never bound");
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && (st.st_ino != path_ino_ || st.st_dev != path_dev_))
    return fail(Errc::Unavailable, path_ + " is another file now (not the socket bound there); left alone");
  return listen(path_);
}

void ControlApi::close() {
  accept_watch_.reset();
  connections_.clear();
  if (listen_fd_) {
    listen_fd_.reset();
    remove_own_file(path_, path_dev_, path_ino_);
  }
}

void ControlApi::adopt(const std::string& path, UniqueFd fd, dev_t dev, ino_t ino) {
  accept_watch_.reset();
  path_ = path;
  listen_fd_ = std::move(fd);
  path_dev_ = dev;
  path_ino_ = ino;
  (void)net::set_nonblocking(listen_fd_.get(), true);
  accept_watch_ = std::make_unique<ev::FdWatch>(loop_, listen_fd_.get(), [this](bool, bool) { on_accept(); });
  accept_watch_->set(true, false);
}

int ControlApi::deferred_fd(uint64_t id) const {
  for (auto& c : connections_)
    if (c->id == id && c->responding && c->out.empty()) return c->fd.get();
  return -1;
}

uint64_t ControlApi::adopt_deferred(UniqueFd fd) {
  auto c = std::make_unique<Connection>();
  Connection* raw = c.get();
  c->fd = std::move(fd);
  (void)net::set_nonblocking(c->fd.get(), true);
  c->watch = std::make_unique<ev::FdWatch>(loop_, c->fd.get(), [this, raw](bool r, bool w) { on_io(*raw, r, w); });
  c->timeout = std::make_unique<ev::Timer>(loop_, [this, raw] { drop(*raw); });
  c->responding = true;  // the request was read by the previous image: only the answer is left
  c->head_done = true;
  c->id = next_id_++;
  c->timeout->arm(kDeferredTimeout);
  connections_.push_back(std::move(c));
  return raw->id;
}

void ControlApi::on_accept() {
  for (;;) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        CORRAL_LOG(Warn, kTag) << sys_error("accept").message();
      }
      return;
    }
    if (connections_.size() >= kMaxConnections) continue;  // closed at once: fd goes out of scope
    auto c = std::make_unique<Connection>();
    Connection* raw = c.get();
    c->fd = std::move(fd);
    c->watch = std::make_unique<ev::FdWatch>(loop_, c->fd.get(), [this, raw](bool r, bool w) { on_io(*raw, r, w); });
    c->timeout = std::make_unique<ev::Timer>(loop_, [this, raw] { drop(*raw); });
    c->watch->set(true, false);
    c->timeout->arm(kRequestTimeout);
    connections_.push_back(std::move(c));
  }
}

void ControlApi::on_io(Connection& c, bool readable, bool writable) {
  if (readable && !c.responding) {
    char buf[8192];
    for (;;) {
      ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (c.in.size() > kMaxBody + 64 * 1024) return respond(c, {413, error_body("request too large")});
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return drop(c);  // EOF or error before a complete request
    }
    if (!c.head_done) {
      auto r = c.parser.parse(c.in, c.head);
      if (r.status == http1::ParseStatus::Error) return respond(c, {r.error.status, error_body(r.error.reason)});
      if (r.status == http1::ParseStatus::Incomplete) return;
      c.head_done = true;
      c.body_start = r.consumed;
    }
    if (c.head.body == http1::BodyKind::Chunked) return respond(c, {400, error_body("chunked bodies are not supported")});
    if (c.head.content_length > kMaxBody) return respond(c, {413, error_body("body too large")});
    if (c.in.size() - c.body_start < c.head.content_length) return;  // wait for the rest of the body
    Request req;
    req.method = std::string(c.head.method);
    std::string_view target = c.head.target;
    req.path = std::string(target.substr(0, target.find('?')));
    req.body = c.in.substr(c.body_start, c.head.content_length);
    req.id = c.id = next_id_++;
    Response resp = handler_(req);
    if (resp.status == 0) {
      c.responding = true;  // reads stop; reply() answers
      c.watch->set(false, false);
      c.timeout->arm(kDeferredTimeout);
      return;
    }
    return respond(c, resp);
  }
  if (writable && c.responding) {
    while (c.written < c.out.size()) {
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.written, c.out.size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return drop(c);
    }
    ::shutdown(c.fd.get(), SHUT_WR);
    drop(c);
  }
}

void ControlApi::reply(uint64_t id, const Response& r) {
  for (auto& c : connections_)
    if (c->id == id && c->responding && c->out.empty()) return respond(*c, r);
}

void ControlApi::respond(Connection& c, const Response& r) {
  c.responding = true;
  c.out = render_response(r);
  c.watch->set(false, true);
}

void ControlApi::drop(Connection& c) {
  // Deleting the connection inside its own callback would free the running watch: defer.
  c.watch->set(false, false);
  c.timeout->cancel();
  Connection* target = &c;
  loop_.post([this, target] {
    connections_.remove_if([target](const std::unique_ptr<Connection>& p) { return p.get() == target; });
  });
}

}  // namespace corral::supervisor
