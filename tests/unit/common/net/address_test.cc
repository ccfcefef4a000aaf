#include "common/net/address.h"

#include <gtest/gtest.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/net/fd_passing.h"
#include "common/net/socket.h"

namespace corral::net {
namespace {

TEST(Address, ParsesIpv4AndIpv6) {
  auto a = parse_address("127.0.0.1:8080");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->to_string(), "127.0.0.1:8080");
  EXPECT_EQ(a->port(), 8080);
  auto b = parse_address("[::1]:443");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->to_string(), "[::1]:443");
  EXPECT_EQ(b->ip(), "::1");
}

TEST(Address, UnixPathsPrintWithinTheirField) {
  SocketAddress a;
  auto* u = reinterpret_cast<sockaddr_un*>(&a.storage);
  u->sun_family = AF_UNIX;
  std::strcpy(u->sun_path, "/run/corral/slot.sock");
  EXPECT_EQ(a.to_string(), "unix:/run/corral/slot.sock");
  // A path filling sun_path has no NUL: the text stops at the field's end.
  std::memset(u->sun_path, 'x', sizeof u->sun_path);
  EXPECT_EQ(a.to_string(), "unix:" + std::string(sizeof u->sun_path, 'x'));
}

TEST(Address, RejectsWithReason) {
  EXPECT_NE(parse_address("127.0.0.1").error().context.find("missing port"), std::string::npos);
  EXPECT_NE(parse_address("::1:80").error().context.find("brackets"), std::string::npos);
  EXPECT_NE(parse_address("localhost:80").error().context.find("numeric"), std::string::npos);
  EXPECT_NE(parse_address("1.2.3.4:70000").error().context.find("0 to 65535"), std::string::npos);
  EXPECT_FALSE(parse_address("[::1:80"));
}

TEST(Socket, EphemeralTcpPortIsReported) {
  auto fd = listen_tcp(*parse_address("127.0.0.1:0"));
  ASSERT_TRUE(fd) << fd.error().message();
  auto bound = local_address(fd->get());
  ASSERT_TRUE(bound);
  EXPECT_NE(bound->port(), 0);
}

TEST(FdPassing, CarriesDataAndDescriptors) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  UniqueFd pr(p[0]), pw(p[1]);
  ASSERT_TRUE(send_message(a.get(), "hello", {pw.get()}));
  auto m = recv_message(b.get());
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->data, "hello");
  ASSERT_EQ(m->fds.size(), 1u);
  ASSERT_EQ(write(m->fds[0].get(), "x", 1), 1);
  char c = 0;
  ASSERT_EQ(read(pr.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  a.reset();
  auto closed = recv_message(b.get());
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().code, Errc::Closed);
}

TEST(Socket, UnixListenReplacesStaleSocketOnly) {
  char dir[] = "/tmp/crl-net-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/s.sock";
  {
    auto l = listen_unix(path);
    ASSERT_TRUE(l) << l.error().message();
  }
  auto again = listen_unix(path);  // stale file from the previous bind
  ASSERT_TRUE(again) << again.error().message();
  auto c = connect_unix_blocking(path);
  ASSERT_TRUE(c) << c.error().message();
  unlink(path.c_str());
  std::string file = std::string(dir) + "/f";
  FILE* f = fopen(file.c_str(), "w");
  fclose(f);
  EXPECT_FALSE(listen_unix(file));
  unlink(file.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace corral::net
