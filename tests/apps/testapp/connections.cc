#include "connections.h"

#include <sys/socket.h>

namespace testapp {

bool Connections::add(int fd) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  idle_[fd] = true;
  return true;
}

bool Connections::set_idle(int fd) {
  std::lock_guard lock(mu_);
  idle_[fd] = true;
  return !stopping_;
}

void Connections::set_busy(int fd) {
  std::lock_guard lock(mu_);
  idle_[fd] = false;
}

void Connections::remove(int fd) {
  std::lock_guard lock(mu_);
  idle_.erase(fd);
  if (idle_.empty()) empty_.notify_all();
}

bool Connections::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

void Connections::stop() {
  std::lock_guard lock(mu_);
  stopping_ = true;
  for (auto& [fd, idle] : idle_)
    if (idle) ::shutdown(fd, SHUT_RD);
}

bool Connections::wait_empty(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return empty_.wait_for(lock, timeout, [this] { return idle_.empty(); });
}

}  // namespace testapp
