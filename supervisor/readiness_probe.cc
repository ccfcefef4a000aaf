#include "supervisor/readiness_probe.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/net/socket.h"

namespace corral::supervisor {

ReadinessProbe::ReadinessProbe(ev::Loop& loop, std::string socket_path, std::string health_path)
    : loop_(loop),
      socket_path_(std::move(socket_path)),
      request_(request_for(health_path)),
      timer_(loop, [this] { finish(false, fail_why_.empty() ? "no answer in time" : fail_why_); }) {}

ReadinessProbe::~ReadinessProbe() = default;

std::string ReadinessProbe::request_for(std::string_view health_path) {
  return "GET " + std::string(health_path) +
         " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: corral-health\r\nConnection: close\r\n\r\n";
}

int ReadinessProbe::parse_status(std::string_view r) {
  static constexpr std::string_view kPrefix = "HTTP/1.";
  if (r.size() < kPrefix.size()) return r == kPrefix.substr(0, r.size()) ? 0 : -1;
  if (r.substr(0, kPrefix.size()) != kPrefix) return -1;
  if (r.size() < 12) return 0;
  if (r[8] != ' ') return -1;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (r[i] < '0' || r[i] > '9') return -1;
    code = code * 10 + (r[i] - '0');
  }
  return code >= 100 ? code : -1;
}

void ReadinessProbe::cancel() {
  watch_.reset();
  fd_.reset();
  timer_.cancel();
  done_ = nullptr;
}

void ReadinessProbe::start(std::chrono::milliseconds timeout, Done done) {
  cancel();
  done_ = std::move(done);
  fail_why_.clear();
  in_.clear();
  written_ = 0;
  auto fd = net::connect_unix(socket_path_);
  if (!fd) {
    // Not listening yet (a self-binding app still booting) or its backlog is full.
    // Reported from the loop, not from inside start(): the caller may be mid-update.
    fail_why_ = "connect: " + fd.error().message();
    timer_.arm(std::chrono::milliseconds(0));
    return;
  }
  fd_ = std::move(*fd);
  watch_ = std::make_unique<ev::FdWatch>(loop_, fd_.get(), [this](bool r, bool w) { on_io(r, w); });
  watch_->set(false, true);
  timer_.arm(timeout);
}

void ReadinessProbe::on_io(bool readable, bool writable) {
  if (writable && written_ < request_.size()) {
    ssize_t n = ::send(fd_.get(), request_.data() + written_, request_.size() - written_, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return finish(false, std::string("send: ") + std::strerror(errno));
    if (n > 0) written_ += static_cast<size_t>(n);
    if (written_ == request_.size()) watch_->set(true, false);
    return;
  }
  if (!readable) return;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      int status = parse_status(in_);
      if (status < 0) return finish(false, "not an HTTP response");
      if (status >= 500) return finish(false, "status " + std::to_string(status));
      if (status > 0) return finish(true, "status " + std::to_string(status));
      if (in_.size() > 64) return finish(false, "not an HTTP response");
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return finish(false, n == 0 ? "closed without a response" : std::string("read: ") + std::strerror(errno));
  }
}

void ReadinessProbe::finish(bool ok, std::string why) {
  auto done = std::move(done_);
  cancel();
  if (done) done(ok, std::move(why));
}

}  // namespace corral::supervisor
