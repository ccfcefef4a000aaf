// The messages of a make-before-break proxy replacement: retire, handoff_connections,
// adopt_connections (PROTOCOL.md).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/control/channel.h"
#include "common/control/messages.h"
#include "common/ev/loop.h"

namespace corral::control {
namespace {

HandedConnection parked(int i) {
  return HandedConnection{"127.0.0.1:8080", "10.0.0." + std::to_string(i), 40000 + i, 8080, 70'000, false};
}

TEST(HandoffMessages, RoundTrip) {
  HandoffConnections h;
  h.connections = {parked(1), HandedConnection{"[::1]:8443", "2001:db8::7", 0, 0, 0, true}};
  h.last = true;
  h.kept = 12;
  auto d = decode(encode(h));
  ASSERT_TRUE(d) << d.error().message();
  auto back = std::get<HandoffConnections>(*d);
  ASSERT_EQ(back.connections.size(), 2u);
  EXPECT_EQ(back.connections[0].listener, "127.0.0.1:8080");
  EXPECT_EQ(back.connections[0].client, "10.0.0.1");
  EXPECT_EQ(back.connections[0].client_port, 40001);
  EXPECT_EQ(back.connections[0].server_port, 8080);
  EXPECT_EQ(back.connections[0].idle_ms, 70'000u);
  EXPECT_FALSE(back.connections[0].fresh);
  EXPECT_TRUE(back.connections[1].fresh);
  EXPECT_EQ(back.connections[1].client, "2001:db8::7");
  EXPECT_TRUE(back.last);
  EXPECT_EQ(back.kept, 12u);
  EXPECT_EQ(type_name(*d), "handoff_connections");

  auto r = decode(encode(Retire{}));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(type_name(*r), "retire");
  EXPECT_EQ(encode(Retire{}), R"({"type":"retire","v":1})");

  AdoptConnections a{{parked(3)}};
  auto ad = decode(encode(a));
  ASSERT_TRUE(ad) << ad.error().message();
  EXPECT_EQ(std::get<AdoptConnections>(*ad).connections.at(0).client, "10.0.0.3");
  EXPECT_EQ(encode(*ad), encode(a));
  // An empty final batch: nothing idle to hand over.
  auto none = decode(encode(HandoffConnections{{}, true, 0}));
  ASSERT_TRUE(none);
  EXPECT_TRUE(std::get<HandoffConnections>(*none).connections.empty());
}

// The proxy's side is not trusted: what could not describe one record's fds, or carries
// impossible values, is refused (the channel then closes).
TEST(HandoffMessages, RejectsMalformed) {
  const std::string ok_conn =
      R"({"listener":"127.0.0.1:1","client":"1.2.3.4","client_port":1,"server_port":1,"idle_ms":5,"fresh":false})";
  EXPECT_TRUE(decode(R"({"v":1,"type":"handoff_connections","connections":[)" + ok_conn + R"(],"last":true,"kept":0})"));
  for (const std::string& bad : std::vector<std::string>{
           std::string(R"({"v":1,"type":"handoff_connections","connections":[]})"),                   // no last
           std::string(R"({"v":1,"type":"handoff_connections","connections":{},"last":true,"kept":0})"),  // not a list
           std::string(R"({"v":1,"type":"handoff_connections","connections":[{"listener":"x"}],"last":true,"kept":0})"),
           std::string(R"({"v":1,"type":"handoff_connections","connections":[{"listener":"a","client":"1.2.3.4",)"
                       R"("client_port":70000,"server_port":1,"idle_ms":5,"fresh":false}],"last":true,"kept":0})"),
           std::string(R"({"v":1,"type":"handoff_connections","connections":[{"listener":"a","client":"1.2.3.4",)"
                       R"("client_port":1,"server_port":-1,"idle_ms":5,"fresh":false}],"last":true,"kept":0})"),
           std::string(R"({"v":1,"type":"handoff_connections","connections":[{"listener":"a","client":"1.2.3.4",)"
                       R"("client_port":1,"server_port":1,"idle_ms":-5,"fresh":false}],"last":true,"kept":0})"),
           std::string(R"({"v":1,"type":"handoff_connections","connections":[{"listener":"a","client":")") +
               std::string(100, '1') + R"(","client_port":1,"server_port":1,"idle_ms":5,"fresh":false}],"last":true,"kept":0})",
           std::string(R"({"v":1,"type":"adopt_connections"})"),
       }) {
    EXPECT_FALSE(decode(bad)) << bad;
  }
  // More entries than one record can carry fds for.
  std::string many = R"({"v":1,"type":"adopt_connections","connections":[)";
  for (int i = 0; i < 65; ++i) many += (i ? "," : "") + ok_conn;
  many += "]}";
  EXPECT_FALSE(decode(many));
  HandoffConnections full;
  for (int i = 0; i < 64; ++i) full.connections.push_back(parked(i));
  EXPECT_TRUE(decode(encode(full)));
}

// A batch of 64 connections and their fds fits one record and arrives whole.
TEST(HandoffMessages, SixtyFourFdsInOneRecord) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  ev::Loop loop;
  size_t entries = 0, fds_seen = 0, sockets = 0;
  Channel a(loop, UniqueFd(sv[0]), [](Message&&, std::vector<UniqueFd>&&) {}, [](const Error&) {});
  Channel b(
      loop, UniqueFd(sv[1]),
      [&](Message&& m, std::vector<UniqueFd>&& fds) {
        entries = std::get<HandoffConnections>(m).connections.size();
        fds_seen = fds.size();
        for (auto& fd : fds) {
          struct stat st {};
          if (fstat(fd.get(), &st) == 0 && S_ISSOCK(st.st_mode)) ++sockets;
        }
        loop.break_loop();
      },
      [](const Error&) {});
  std::vector<UniqueFd> conns;
  std::vector<int> raw;
  HandoffConnections h;
  for (int i = 0; i < 64; ++i) {
    int p[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
    conns.emplace_back(p[0]);
    conns.emplace_back(p[1]);
    raw.push_back(p[0]);
    h.connections.push_back(parked(i));
  }
  h.last = true;
  ASSERT_TRUE(a.send(h, raw));
  ev::Timer stop(loop, [&] { loop.break_loop(); });
  stop.arm(std::chrono::milliseconds(5000));
  loop.run();
  EXPECT_EQ(entries, 64u);
  EXPECT_EQ(fds_seen, 64u);
  EXPECT_EQ(sockets, 64u);
}

}  // namespace
}  // namespace corral::control
