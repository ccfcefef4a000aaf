#pragma once
// Accepting on the listening sockets the supervisor handed over. Every loop thread watches
// the same shared fds; each wake-up accepts (accept4, nonblocking, cloexec) until EAGAIN or
// a bounded batch, so one busy listener cannot starve a loop. Loop-affine.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/ev/loop.h"

namespace corral::proxy {

/// The listening sockets, owned jointly by the control thread and every loop that watches
/// them: the fds close when the last holder lets go (so no loop ever watches a closed fd).
struct ListenerSet {
  std::vector<UniqueFd> fds;
  std::vector<std::string> addresses;
};

class Listener {
 public:
  /// Fires for each accepted connection with its socket and the client's IP ("" for Unix).
  using OnAccept = std::function<void(UniqueFd fd, std::string client_ip)>;

  Listener(ev::Loop& loop, int fd, OnAccept on_accept, int batch = 64);
  ~Listener() = default;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  void on_readable();
  int fd_;
  OnAccept on_accept_;
  int batch_;
  ev::FdWatch watch_;
};

}  // namespace corral::proxy
