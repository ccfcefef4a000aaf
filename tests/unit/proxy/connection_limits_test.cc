// Connection limits and accept back-off: ConnectionLimiter's counts (exact under threads),
// the client key (IPv4 address, IPv6 /64), the once-a-second refusal log, and a Listener that
// runs out of file descriptors pausing instead of spinning, and one that stops listening for a
// graceful stop.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "proxy/connection_limiter.h"
#include "proxy/listener.h"

namespace corral::proxy {
namespace {

using V = ConnectionLimiter::Verdict;

sockaddr_storage v4(const char* ip) {
  sockaddr_storage ss{};
  auto& a = reinterpret_cast<sockaddr_in&>(ss);
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  return ss;
}

sockaddr_storage v6(const char* ip) {
  sockaddr_storage ss{};
  auto& a = reinterpret_cast<sockaddr_in6&>(ss);
  a.sin6_family = AF_INET6;
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return ss;
}

TEST(ClientKey, Ipv4IsTheAddressAndIpv6ItsSlash64) {
  EXPECT_EQ(client_key(v4("192.0.2.7")), client_key(v6("::ffff:192.0.2.7"))) << "IPv4-mapped = IPv4";
  EXPECT_NE(client_key(v4("192.0.2.7")), client_key(v4("192.0.2.8")));
  EXPECT_EQ(client_key(v6("2001:db8:1:2::1")), client_key(v6("2001:db8:1:2:ffff:ffff:ffff:ffff")));
  EXPECT_NE(client_key(v6("2001:db8:1:2::1")), client_key(v6("2001:db8:1:3::1")));
  EXPECT_NE(client_key(v6("::c000:207")), client_key(v4("192.0.2.7"))) << "families never collide";
  EXPECT_EQ(client_key_text(client_key(v4("192.0.2.7"))), "192.0.2.7");
  EXPECT_EQ(client_key_text(client_key(v6("2001:db8:1:2:3:4:5:6"))), "2001:db8:1:2::/64");
  sockaddr_storage unix_peer{};
  unix_peer.ss_family = AF_UNIX;
  EXPECT_EQ(client_key(unix_peer).family, 0);
}

TEST(ConnectionLimiter, TotalLimitIsExactAndAPlaceComesBackOnRelease) {
  ConnectionLimiter l;
  ClientKey k = client_key(v4("192.0.2.1"));
  std::vector<ConnectionSlot> slots(3);
  for (auto& s : slots) EXPECT_EQ(l.admit(k, 3, 0, s), V::Admitted);
  ConnectionSlot more;
  EXPECT_EQ(l.admit(k, 3, 0, more), V::ListenerFull);
  EXPECT_FALSE(more.held());
  EXPECT_EQ(l.open(), 3);
  slots[1].release();
  slots[1].release();  // once only
  EXPECT_EQ(l.open(), 2);
  EXPECT_EQ(l.admit(k, 3, 0, more), V::Admitted);
  EXPECT_EQ(l.admit(k, 3, 0, slots[1]), V::ListenerFull);
  // 0 = no limit; a lower limit after a reload refuses until enough have closed.
  EXPECT_EQ(l.admit(k, 0, 0, slots[1]), V::Admitted);
  EXPECT_EQ(l.open(), 4);
  ConnectionSlot x;
  EXPECT_EQ(l.admit(k, 2, 0, x), V::ListenerFull);
  slots.clear();
  more = ConnectionSlot();
  EXPECT_EQ(l.open(), 0);
}

TEST(ConnectionLimiter, PerClientLimitCountsEachAddressAndEachSlash64) {
  ConnectionLimiter l;
  ClientKey a = client_key(v4("192.0.2.1")), b = client_key(v4("192.0.2.2"));
  ClientKey n1 = client_key(v6("2001:db8:0:1::1")), n1b = client_key(v6("2001:db8:0:1::abcd"));
  std::vector<ConnectionSlot> s(8);
  EXPECT_EQ(l.admit(a, 0, 2, s[0]), V::Admitted);
  EXPECT_EQ(l.admit(a, 0, 2, s[1]), V::Admitted);
  EXPECT_EQ(l.admit(a, 0, 2, s[2]), V::ClientFull);
  EXPECT_EQ(l.admit(b, 0, 2, s[2]), V::Admitted);
  EXPECT_EQ(l.admit(n1, 0, 2, s[3]), V::Admitted);
  EXPECT_EQ(l.admit(n1b, 0, 2, s[4]), V::Admitted);
  EXPECT_EQ(l.admit(n1, 0, 2, s[5]), V::ClientFull) << "two addresses of one /64 are one client";
  EXPECT_EQ(l.open(), 5) << "a refused connection is not counted";
  EXPECT_EQ(l.open_from(a), 2u);
  EXPECT_EQ(l.open_from(n1b), 2u);
  s[0].release();
  EXPECT_EQ(l.open_from(a), 1u);
  EXPECT_EQ(l.admit(a, 0, 2, s[0]), V::Admitted);
  // Not a limit of the listener: the total limit is checked first.
  EXPECT_EQ(l.admit(b, 5, 2, s[6]), V::ListenerFull);
  // A slot taken while the per-client limit was off gives back only the total.
  EXPECT_EQ(l.admit(b, 0, 0, s[6]), V::Admitted);
  EXPECT_EQ(l.open_from(b), 1u);
  s[6].release();
  EXPECT_EQ(l.open_from(b), 1u);
  s.clear();
  EXPECT_EQ(l.open(), 0);
  EXPECT_EQ(l.clients(), 0u) << "the table forgets clients with no connection";
}

TEST(ConnectionLimiter, CountsStayExactWhenManyThreadsAcceptAndClose) {
  ConnectionLimiter l;
  constexpr uint32_t kTotal = 64, kPerClient = 5;
  std::atomic<int64_t> over{0};
  std::atomic<uint64_t> admitted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<ConnectionSlot> held;
      uint32_t seed = 12345u + static_cast<uint32_t>(t);
      for (int i = 0; i < 40000; ++i) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 16;  // an LCG's low bits are not random
        ClientKey k{r % 8 + 1, AF_INET};  // 8 clients: the per-client limit bites too
        if (held.size() < 32 && (r >> 3) % 4 != 0) {  // mostly opening: demand is above the limits
          ConnectionSlot s;
          if (l.admit(k, kTotal, kPerClient, s) == V::Admitted) {
            admitted.fetch_add(1);
            if (l.open() > kTotal || l.open_from(k) > kPerClient) over.fetch_add(1);
            held.push_back(std::move(s));
          } else {
            refused.fetch_add(1);
          }
        } else if (!held.empty()) {
          held.erase(held.begin() + static_cast<long>((r >> 5) % held.size()));
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(over.load(), 0);
  EXPECT_GT(admitted.load(), 1000u);
  EXPECT_GT(refused.load(), 100u) << "the limits were reached";
  EXPECT_EQ(l.open(), 0);
  EXPECT_EQ(l.clients(), 0u);
}

TEST(ConnectionLimiter, RefusalsAreLoggedAtMostOncePerSecond) {
  ConnectionLimiter l;
  uint64_t total = 0, client = 0;
  EXPECT_TRUE(l.note_refusal(10'000, V::ListenerFull, total, client));
  EXPECT_EQ(total, 1u);
  EXPECT_EQ(client, 0u);
  int lines = 0;
  for (int64_t ms = 10'001; ms < 10'999; ms += 3) lines += l.note_refusal(ms, V::ClientFull, total, client);
  EXPECT_EQ(lines, 0);
  EXPECT_TRUE(l.note_refusal(11'000, V::ListenerFull, total, client));
  EXPECT_EQ(total, 1u);
  EXPECT_EQ(client, 333u) << "the line counts what the silent second refused";
}

// A listener whose accept() fails with EMFILE stops watching for a growing back-off instead
// of waking up again at once, and accepts the waiting connection once an fd is free.
TEST(Listener, BacksOffWhileOutOfFileDescriptorsAndResumes) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_storage addr = v4("127.0.0.1");
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(sockaddr_in)), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(sockaddr_in)), 0);

  ev::Loop loop;
  int accepted = 0;
  std::vector<std::chrono::milliseconds> pauses;
  Listener listener(
      loop, lfd, [&](UniqueFd, const sockaddr_storage&) { ++accepted; }, 64,
      [&](int err, std::chrono::milliseconds backoff) {
        EXPECT_EQ(err, EMFILE);
        pauses.push_back(backoff);
      });

  // No fd above the ones open now: accept4 fails with EMFILE.
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = ::dup(0);
  ASSERT_GE(probe, 0);
  ::close(probe);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(probe);  // every fd below `probe` is taken
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  ev::Timer stop(loop, [&] { loop.break_loop(); });
  stop.arm(std::chrono::milliseconds(700));
  ASSERT_TRUE(loop.run());
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);

  EXPECT_EQ(accepted, 0);
  // 10 + 20 + 40 + 80 + 160 + 320 ms: a handful of tries in 0.7 s, not a spin.
  EXPECT_GE(pauses.size(), 4u);
  EXPECT_LE(pauses.size(), 8u);
  ASSERT_GE(pauses.size(), 2u);
  EXPECT_EQ(pauses[0], Listener::kFirstBackoff);
  EXPECT_EQ(pauses[1], 2 * Listener::kFirstBackoff);
  EXPECT_TRUE(listener.paused());

  stop.arm(std::chrono::milliseconds(1500));
  ev::Timer check(loop, [&] {
    if (accepted) loop.break_loop();
    else check.arm(std::chrono::milliseconds(5));
  });
  check.arm(std::chrono::milliseconds(5));
  ASSERT_TRUE(loop.run());
  EXPECT_EQ(accepted, 1) << "the waiting connection is accepted once fds are free";
  EXPECT_FALSE(listener.paused());
  ::close(client);
  ::close(lfd);
}

// A graceful stop: the connections waiting in the backlog are accepted, and afterwards a new
// one is refused at once although another process (the supervisor: here a dup) still holds
// the listening socket; a second Listener on the same socket stops watching quietly.
TEST(Listener, StopListeningServesTheBacklogThenRefuses) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_storage addr = v4("127.0.0.1");
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(sockaddr_in)), 0);
  ASSERT_EQ(::listen(lfd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int held = ::dup(lfd);  // the supervisor's copy
  ASSERT_GE(held, 0);
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(sockaddr_in)), 0);
    clients.push_back(c);
  }

  ev::Loop loop;
  int accepted = 0, accepted_other = 0;
  // Batch 1: a wake-up would take one connection; stop_listening takes them all.
  Listener listener(loop, lfd, [&](UniqueFd, const sockaddr_storage&) { ++accepted; }, 1);
  Listener other(loop, lfd, [&](UniqueFd, const sockaddr_storage&) { ++accepted_other; }, 1);
  listener.stop_listening();
  EXPECT_EQ(accepted, 3) << "every connection waiting in the backlog is accepted";

  int late = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(late, reinterpret_cast<sockaddr*>(&addr), sizeof(sockaddr_in)), -1);
  EXPECT_EQ(errno, ECONNREFUSED) << "a connection after the stop is refused, not left in a backlog";

  ev::Timer stop(loop, [&] { loop.break_loop(); });
  stop.arm(std::chrono::milliseconds(100));
  ASSERT_TRUE(loop.run());
  EXPECT_EQ(accepted_other, 0);
  EXPECT_TRUE(other.paused()) << "the other watch of the socket stopped";
  for (int c : clients) ::close(c);
  ::close(late);
  ::close(held);
  ::close(lfd);
}

}  // namespace
}  // namespace corral::proxy
