#include "supervisor/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/base/unique_fd.h"

namespace corral::supervisor {

Result<void> sd_notify(std::string_view state) {
  const char* name = std::getenv("NOTIFY_SOCKET");
  if (!name || !*name) return {};
  return sd_notify_to(name, state);
}

Result<void> sd_notify_to(const std::string& socket_name, std::string_view state) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (socket_name.size() >= sizeof sa.sun_path || socket_name.size() < 2)
    return fail(Errc::InvalidInput, "NOTIFY_SOCKET has a bad length: " + socket_name);
  std::memcpy(sa.sun_path, socket_name.data(), socket_name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_name.size());
  if (socket_name[0] == '@') {
    sa.sun_path[0] = '\0';  // abstract namespace: no trailing NUL counted
  } else {
    len += 1;
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_sys("socket for NOTIFY_SOCKET");
  // Never blocks: a service manager that does not read its socket (its queue full) must
  // not stop the supervisor; the message is dropped and the caller logs it.
  if (::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa),
               len) < 0)
    return fail_sys("notify " + socket_name);
  return {};
}

}  // namespace corral::supervisor
