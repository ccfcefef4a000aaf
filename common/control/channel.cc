#include "common/control/channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/base/log.h"
#include "common/net/fd_passing.h"
#include "common/net/socket.h"

namespace corral::control {

Channel::Channel(ev::Loop& loop, UniqueFd fd, OnMessage on_message, OnClose on_close)
    : loop_(loop), fd_(std::move(fd)), on_message_(std::move(on_message)), on_close_(std::move(on_close)) {
  (void)net::set_nonblocking(fd_.get());
  watch_ = std::make_unique<ev::FdWatch>(loop_, fd_.get(), [this](bool r, bool w) { on_io(r, w); });
  watch_->set(true, false);
}

Channel::~Channel() { *alive_ = false; }

bool Channel::send(const Message& m, const std::vector<int>& fds) {
  if (!fd_) return false;
  Pending p;
  p.bytes = encode(m);
  if (!out_.empty() && queued_bytes_ + p.bytes.size() > kMaxQueued) return false;
  for (int f : fds) p.fds.emplace_back(::fcntl(f, F_DUPFD_CLOEXEC, 3));
  queued_bytes_ += p.bytes.size();
  out_.push_back(std::move(p));
  flush();
  return fd_.get() >= 0;
}

void Channel::flush() {
  while (!out_.empty() && fd_) {
    auto& p = out_.front();
    std::vector<int> raw;
    for (auto& f : p.fds) raw.push_back(f.get());
    auto r = net::send_message(fd_.get(), p.bytes, raw);
    if (!r) {
      if (r.error().sys_errno == EAGAIN || r.error().sys_errno == EWOULDBLOCK) break;
      close_with(r.error());
      return;
    }
    queued_bytes_ -= p.bytes.size();
    out_.pop_front();
  }
  if (fd_) watch_->set(true, !out_.empty());
}

void Channel::on_io(bool readable, bool writable) {
  auto alive = alive_;
  if (writable) flush();
  if (!*alive || !fd_) return;
  if (!readable) return;
  // Read what is there now, but yield after a batch so one chatty peer cannot starve the loop.
  for (int i = 0; i < 64 && fd_; ++i) {
    auto msg = net::recv_message(fd_.get());
    if (!msg) {
      if (msg.error().sys_errno == EAGAIN || msg.error().sys_errno == EWOULDBLOCK) return;
      close_with(msg.error());
      return;
    }
    auto decoded = decode(msg->data);
    if (!decoded) {
      close_with(decoded.error());
      return;
    }
    on_message_(std::move(*decoded), std::move(msg->fds));
    if (!*alive) return;
  }
}

void Channel::close_with(const Error& e) {
  if (!fd_) return;
  watch_.reset();
  fd_.reset();
  out_.clear();
  queued_bytes_ = 0;
  if (on_close_) on_close_(e);
}

}  // namespace corral::control
