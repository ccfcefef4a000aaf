#include "proxy/listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/base/log.h"

namespace corral::proxy {
namespace {
std::string ip_of(const sockaddr_storage& ss) {
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
}  // namespace

Listener::Listener(ev::Loop& loop, int fd, OnAccept on_accept, int batch)
    : fd_(fd), on_accept_(std::move(on_accept)), batch_(batch), watch_(loop, fd, [this](bool, bool) { on_readable(); }) {
  watch_.set(true, false);
}

void Listener::on_readable() {
  for (int i = 0; i < batch_; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int c = ::accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) return;  // another loop got it, or nothing left
      // EMFILE/ENFILE/ENOBUFS: keep serving what we have; the next wake-up retries.
      CORRAL_LOG(Warn, "listener") << "accept: " << std::strerror(errno);
      return;
    }
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    on_accept_(UniqueFd(c), ip_of(ss));
  }
}

}  // namespace corral::proxy
