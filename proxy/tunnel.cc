#include "proxy/tunnel.h"

#include <sys/socket.h>

#include <cerrno>

#include "proxy/exchange.h"

namespace corral::proxy {
namespace {
constexpr size_t kReadSize = 16 * 1024;
}  // namespace

Tunnel::Tunnel(ev::Loop& loop, ExchangeSink& sink, std::unique_ptr<UpstreamConn> conn, std::chrono::milliseconds idle,
               metrics::TunnelBytes* bytes)
    : loop_(loop),
      sink_(sink),
      conn_(std::move(conn)),
      idle_(idle),
      bytes_(bytes),
      timer_(loop, [this] { on_timer(); }) {
  conn_->set_handler(this);
}

Tunnel::~Tunnel() {
  if (conn_) conn_->want(false, false);
}

void Tunnel::start(std::string_view early) {
  activity();
  timer_.arm(idle_);
  if (!early.empty()) {
    bytes_down_ += early.size();
    if (bytes_) bytes_->down.add(early.size());
    sink_.on_tunnel_data(early);
    if (finished_) return;
    sink_.on_response_flush();
    if (finished_) return;
  }
  update_interest();
}

void Tunnel::activity() { last_activity_ = loop_.now(); }

void Tunnel::update_interest() {
  if (finished_ || !conn_) return;
  conn_->want(!paused_ && !worker_eof_, out_pos_ < out_.size());
}

bool Tunnel::send(std::string_view data) {
  if (finished_ || shut_worker_) return true;  // nowhere to go: dropped
  activity();
  if (bytes_) bytes_->up.add(data.size());
  if (out_pos_ < out_.size()) {
    out_.append(data);  // behind what is already waiting
    write_worker();
  } else {
    // Nothing waiting: straight to the socket; only what it does not take now is copied.
    const size_t n = send_now(data.data(), data.size());
    if (finished_) return true;
    if (n < data.size()) {
      out_.assign(data.substr(n));
      out_pos_ = 0;
      update_interest();  // wait for writable
    }
  }
  if (finished_) return true;
  if (out_.size() - out_pos_ > kTunnelBufferLimit) {
    blocked_ = true;
    return false;
  }
  return true;
}

void Tunnel::client_eof() {
  if (finished_ || client_eof_) return;
  client_eof_ = true;
  write_worker();  // shuts the worker's side down once the buffer is out
}

void Tunnel::pause() {
  if (paused_) return;
  paused_ = true;
  update_interest();
}

void Tunnel::resume() {
  if (!paused_) return;
  paused_ = false;
  update_interest();
}

void Tunnel::on_upstream_io(bool readable, bool writable) noexcept {
  if (finished_) return;
  if (writable) write_worker();
  if (finished_) return;
  if (readable && !paused_ && !worker_eof_) read_worker();
}

size_t Tunnel::send_now(const char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::send(conn_->fd(), data + done, size - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      finish(TunnelEnd::Failed, "write to worker failed");
      break;
    }
    done += static_cast<size_t>(n);
  }
  return done;
}

void Tunnel::write_worker() {
  out_pos_ += send_now(out_.data() + out_pos_, out_.size() - out_pos_);
  if (finished_) return;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    if (out_.capacity() > kTunnelBufferLimit) std::string().swap(out_);
  } else if (out_pos_ > kTunnelBufferLimit) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  if (blocked_ && out_.size() - out_pos_ <= kTunnelBufferLimit / 2) {
    blocked_ = false;
    sink_.on_tunnel_writable();
    if (finished_) return;
  }
  if (client_eof_ && !shut_worker_ && out_pos_ == out_.size()) {
    shut_worker_ = true;
    ::shutdown(conn_->fd(), SHUT_WR);
    check_done();
    if (finished_) return;
  }
  update_interest();
}

void Tunnel::read_worker() {
  char buf[kReadSize];
  for (int round = 0; round < 4 && !paused_ && !finished_; ++round) {
    ssize_t n = ::recv(conn_->fd(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      finish(TunnelEnd::Failed, "worker connection reset");
      return;
    }
    if (n == 0) {
      worker_eof_ = true;
      sink_.on_tunnel_eof();
      if (finished_) return;
      check_done();
      if (finished_) return;
      break;
    }
    activity();
    bytes_down_ += static_cast<uint64_t>(n);
    if (bytes_) bytes_->down.add(static_cast<uint64_t>(n));
    sink_.on_tunnel_data(std::string_view(buf, static_cast<size_t>(n)));
    if (finished_) return;
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  sink_.on_response_flush();
  if (finished_) return;
  update_interest();
}

void Tunnel::check_done() {
  // Both directions closed: the worker's EOF went to the frontend, ours went to the worker.
  if (worker_eof_ && shut_worker_) finish(TunnelEnd::Closed, nullptr);
}

void Tunnel::on_timer() {
  if (finished_) return;
  auto now = loop_.now();
  auto due = last_activity_ + idle_;
  if (now + std::chrono::milliseconds(1) < due) {
    timer_.arm(std::chrono::ceil<std::chrono::milliseconds>(due - now));
    return;
  }
  finish(TunnelEnd::IdleTimeout, "idle timeout");
}

void Tunnel::detach() {
  finished_ = true;
  timer_.cancel();
  if (conn_) {
    conn_->want(false, false);
    // The worker learns now that the tunnel is gone, not when the deferred destruction runs.
    ::shutdown(conn_->fd(), SHUT_RDWR);
  }
}

void Tunnel::finish(TunnelEnd end, const char* why) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  if (conn_) conn_->want(false, false);
  sink_.on_tunnel_closed(end, why);
}

}  // namespace corral::proxy
