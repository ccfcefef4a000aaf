#include "leftovers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace testapp {
namespace {
int g_listen_fd = -1;

[[noreturn]] void run_stray(pid_t worker, int lfd, bool serve) {
  for (int fd = 0; fd < 4096; ++fd)
    if (fd != lfd || !serve) ::close(fd);
  if (!serve || lfd < 0) {
    for (;;) ::pause();
  }
  // Holds the worker's socket; once the worker is gone, answers whatever connects to it.
  while (::kill(worker, 0) == 0 || errno == EPERM) ::usleep(20'000);
  static const char kResponse[] =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstray\n";
  for (;;) {
    int c = ::accept(lfd, nullptr, nullptr);
    if (c < 0) {
      ::usleep(10'000);
      continue;
    }
    char buf[4096];
    [[maybe_unused]] ssize_t r = ::read(c, buf, sizeof buf);
    [[maybe_unused]] ssize_t w = ::write(c, kResponse, sizeof kResponse - 1);
    ::close(c);
  }
}
}  // namespace

void set_listen_fd(int fd) { g_listen_fd = fd; }
int listen_fd() { return g_listen_fd; }

pid_t fork_away(bool serve) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  const pid_t worker = ::getpid();
  const int lfd = g_listen_fd;
  const pid_t mid = ::fork();
  if (mid < 0) {
    ::close(p[0]);
    ::close(p[1]);
    return -1;
  }
  if (mid == 0) {
    ::setsid();
    const pid_t gc = ::fork();
    if (gc == 0) {
      const pid_t me = ::getpid();
      [[maybe_unused]] ssize_t w = ::write(p[1], &me, sizeof me);
      run_stray(worker, lfd, serve);
    }
    ::_exit(gc > 0 ? 0 : 1);
  }
  ::close(p[1]);
  int status = 0;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t gc = -1;
  if (::read(p[0], &gc, sizeof gc) != static_cast<ssize_t>(sizeof gc)) gc = -1;
  ::close(p[0]);
  return gc;
}

}  // namespace testapp
