#include "proxy/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "common/base/log.h"

namespace corral::proxy {

std::string peer_ip(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6))
      inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof buf);
    else
      inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  }
  return buf;
}

uint16_t port_of(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return 0;
}

void set_nodelay(int fd, const sockaddr_storage& peer) {
  if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Listener::Listener(ev::Loop& loop, int fd, OnAccept on_accept, int batch, OnPause on_pause)
    : fd_(fd),
      on_accept_(std::move(on_accept)),
      on_pause_(std::move(on_pause)),
      batch_(batch),
      watch_(loop, fd, [this](bool, bool) { on_readable(); }),
      resume_timer_(loop, [this] { resume(); }) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) local_port_ = port_of(ss);
  watch_.set(true, false);
}

void Listener::on_readable() {
  for (int i = 0; i < batch_; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:  // refused by a firewall rule: that connection is gone, the next may be fine
          continue;
        case EAGAIN: return;  // another loop got it, or nothing left
        case EINVAL:
          // No longer listening: another loop shut the socket down (stop_listening).
          watch_.set(false, false);
          return;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          // The connection stays in the backlog and the fd stays readable: watching it now
          // would spin. Serve what we have and look again after the back-off.
          pause(errno);
          return;
        default:
          CORRAL_LOG(Warn, "listener") << "accept: " << std::strerror(errno);
          pause(errno);
          return;
      }
    }
    backoff_ = kFirstBackoff;
    on_accept_(UniqueFd(c), ss);
  }
}

void Listener::stop_listening() {
  const int batch = batch_;
  batch_ = std::numeric_limits<int>::max();  // the backlog bounds it
  on_readable();
  batch_ = batch;
  ::shutdown(fd_, SHUT_RD);
  watch_.set(false, false);
  resume_timer_.cancel();
}

void Listener::pause(int err) {
  watch_.set(false, false);
  resume_timer_.arm(backoff_);
  if (on_pause_) on_pause_(err, backoff_);
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
}

void Listener::resume() {
  watch_.set(true, false);  // level-triggered: fires at once when connections are waiting
}

}  // namespace corral::proxy
