#include "supervisor/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "common/base/unique_fd.h"

namespace corral::supervisor {
namespace {

// Binds a datagram socket; name "@x" is abstract.
UniqueFd bind_dgram(const std::string& name) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') sa.sun_path[0] = '\0';
  else len += 1;
  EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len), 0) << std::strerror(errno);
  return fd;
}

std::string recv_one(int fd) {
  char buf[256];
  ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(SdNotify, SendsToPathSocketFromEnvironment) {
  std::string path = "/tmp/corral-notify-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  UniqueFd fd = bind_dgram(path);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(sd_notify("READY=1"));
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(recv_one(fd.get()), "READY=1");
  ::unlink(path.c_str());
}

TEST(SdNotify, SendsToAbstractSocket) {
  std::string name = "@corral-notify-" + std::to_string(::getpid());
  UniqueFd fd = bind_dgram(name);
  EXPECT_TRUE(sd_notify_to(name, "STOPPING=1"));
  EXPECT_EQ(recv_one(fd.get()), "STOPPING=1");
}

TEST(SdNotify, UnsetIsANoOpAndMissingSocketIsAnError) {
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_TRUE(sd_notify("READY=1"));
  auto r = sd_notify_to("/tmp/corral-no-such-notify-socket", "READY=1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno, ENOENT);
}

// A manager that stops reading (its queue full) never blocks the supervisor: the send fails
// at once instead (a blocked sendto hung the supervisor after a few reloads).
TEST(SdNotify, NeverBlocksOnAFullQueue) {
  std::string path = "/tmp/corral-notify-full-" + std::to_string(::getpid());
  ::unlink(path.c_str());
  UniqueFd fd = bind_dgram(path);
  bool refused = false;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10'000 && !refused; ++i) refused = !sd_notify_to(path, "READY=1");
  EXPECT_TRUE(refused) << "the queue never filled up";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace corral::supervisor
