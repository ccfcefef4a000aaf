#pragma once
// Accepting on the listening sockets the supervisor handed over. Every loop thread watches
// the same shared fds; each wake-up accepts (accept4, nonblocking, cloexec) until EAGAIN or
// a bounded batch, so one busy listener cannot starve a loop. When the process or the system
// is out of file descriptors (EMFILE, ENFILE) or socket memory (ENOBUFS, ENOMEM), the
// listener stops watching for a short, growing back-off (10 ms doubling to 1 s, back to 10 ms
// after an accept), so pending connections wait in the kernel's backlog instead of the loop
// spinning on a level-triggered fd that accept() cannot empty. Loop-affine.
#include <sys/socket.h>

#include <chrono>
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

/// "1.2.3.4" / "2001:db8::1" (IPv4-mapped IPv6 addresses as IPv4); "" for other families.
std::string peer_ip(const sockaddr_storage& peer);
/// The port of an IPv4 or IPv6 address; 0 for other families.
uint16_t port_of(const sockaddr_storage& ss);

/// Sets TCP_NODELAY on an accepted TCP connection (responses are written whole, so Nagle
/// only delays them); nothing for other families. Called once per admitted connection.
void set_nodelay(int fd, const sockaddr_storage& peer);

class Listener {
 public:
  /// Fires for each accepted connection with its socket and the client's address.
  using OnAccept = std::function<void(UniqueFd fd, const sockaddr_storage& peer)>;
  /// Fires when accepting pauses for `backoff` (loop thread; count, log rate-limited).
  using OnPause = std::function<void(int err, std::chrono::milliseconds backoff)>;

  static constexpr std::chrono::milliseconds kFirstBackoff{10};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};

  Listener(ev::Loop& loop, int fd, OnAccept on_accept, int batch = 64, OnPause on_pause = nullptr);
  ~Listener() = default;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  /// True while accepting is paused after EMFILE/ENFILE/ENOBUFS/ENOMEM.
  bool paused() const { return !watch_.wants_read(); }
  /// For a graceful stop: accepts every connection already waiting, then shuts the listening
  /// socket down (shutdown(SHUT_RD): for every process that holds it, the supervisor too), so
  /// a new connection is refused at once and its client (a load balancer) tries another
  /// host, instead of waiting in the backlog for an accept that never comes and being reset
  /// when the supervisor exits. Stops watching.
  void stop_listening();
  /// The port this listening socket is bound to (looked up once; 0 for a Unix socket): every
  /// connection it accepts has it as its local port, so none needs a getsockname of its own.
  uint16_t local_port() const { return local_port_; }

 private:
  void on_readable();
  void pause(int err);
  void resume();
  int fd_;
  OnAccept on_accept_;
  OnPause on_pause_;
  int batch_;
  uint16_t local_port_ = 0;
  std::chrono::milliseconds backoff_ = kFirstBackoff;
  ev::FdWatch watch_;
  ev::Timer resume_timer_;
};

}  // namespace corral::proxy
