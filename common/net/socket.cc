#include "common/net/socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace corral::net {

Result<UniqueFd> listen_tcp(const SocketAddress& addr, int backlog) {
  UniqueFd fd(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_sys("socket " + addr.to_string());
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.family() == AF_INET6) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.storage), addr.len) != 0)
    return fail_sys("bind " + addr.to_string());
  if (::listen(fd.get(), backlog) != 0) return fail_sys("listen " + addr.to_string());
  return fd;
}

namespace {
Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path)
    return fail(Errc::InvalidInput, "unix socket path too long (" + std::to_string(path.size()) + " bytes, max " +
                                        std::to_string(sizeof sa.sun_path - 1) + "): " + path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return sa;
}
}  // namespace

Result<UniqueFd> listen_unix(const std::string& path, int backlog, int mode) {
  auto sa = unix_addr(path);
  if (!sa) return fail(sa.error());
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(Errc::InvalidInput, "refusing to replace non-socket " + path);
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_sys("socket unix");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0) return fail_sys("bind " + path);
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) return fail_sys("chmod " + path);
  if (::listen(fd.get(), backlog) != 0) return fail_sys("listen " + path);
  return fd;
}

Result<UniqueFd> connect_unix(const std::string& path) {
  auto sa = unix_addr(path);
  if (!sa) return fail(sa.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_sys("socket unix");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0 && errno != EINPROGRESS &&
      errno != EAGAIN)
    return fail_sys("connect " + path);
  return fd;
}

Result<UniqueFd> connect_unix_blocking(const std::string& path) {
  auto sa = unix_addr(path);
  if (!sa) return fail(sa.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_sys("socket unix");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0) return fail_sys("connect " + path);
  return fd;
}

int connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

Result<void> set_nonblocking(int fd, bool on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return fail_sys("fcntl F_GETFL");
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (fcntl(fd, F_SETFL, fl) != 0) return fail_sys("fcntl F_SETFL");
  return {};
}

Result<void> set_cloexec(int fd, bool on) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0) return fail_sys("fcntl F_GETFD");
  fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
  if (fcntl(fd, F_SETFD, fl) != 0) return fail_sys("fcntl F_SETFD");
  return {};
}

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail_sys("write");
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return {};
}

}  // namespace corral::net
