#include "common/control/messages.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include "common/control/channel.h"
#include "common/ev/loop.h"

namespace corral::control {
namespace {

TEST(Messages, RoundTripEveryType) {
  SetPool pool;
  pool.slots.push_back(SlotInfo{"shop", 2, 7, "/run/corral/shop.2.sock", 4, false, 1234});
  std::vector<Message> all = {SetListeners{{"127.0.0.1:8080", "[::]:8443"}}, SetConfig{3, "{\"x\":1}"}, pool,
                              ProxyReady{3}, WorkerHung{"shop", 2, 7, "abc"}, ProxyStats{10, 2, 1, 5, {}},
                              ProxyStats{1, 1, 0, 1, {SlotStats{"shop", 2, 7, 1, 99}}},
                              SlotEvent{"shop", 2, 7, SlotEvent::Kind::Drained, 0},
                              SlotEvent{"shop", 2, 7, SlotEvent::Kind::MaxRequests, 1000},
                              SlotRequestsQuery{5, "shop", 2, 7},
                              SlotRequests{5, "shop", 2, 7,
                                           {SlotRequestInfo{"r1", "GET", "/a?b", 1500, "failed",
                                                            "4bf92f3577b34da6a3ce929d0e0e4736"},
                                            SlotRequestInfo{"r2", "GET", "/", 1, "in_flight", ""}}},
                              StatsQuery{11},
                              ProxyStats{1, 2, 3, 4, {SlotStats{"shop", 2, 7, 1, 9}}, 11},
                              ProxyStats{1, 2, 3, 4, {}, 0, {AppStats{"shop", 40, 1'250'000, 300'000, 12, 3, 6}}},
                              SetDraining{true}, SetDraining{false}, AccessLogFile{"/var/log/corral/access.log"}};
  pool.failing = {"broken"};
  pool.slots[0].max_requests = 1017;
  for (auto& m : all) {
    auto d = decode(encode(m));
    ASSERT_TRUE(d) << d.error().message();
    EXPECT_EQ(type_name(*d), type_name(m));
    EXPECT_EQ(encode(*d), encode(m));
  }
  auto p = std::get<SetPool>(*decode(encode(pool)));
  EXPECT_EQ(p.slots[0].path, "/run/corral/shop.2.sock");
  EXPECT_FALSE(p.slots[0].accepting);
  EXPECT_EQ(p.slots[0].pid, 1234);
  EXPECT_EQ(p.slots[0].max_requests, 1017u);
  EXPECT_EQ(p.failing, std::vector<std::string>{"broken"});
  auto st = std::get<ProxyStats>(*decode(encode(all[6])));
  ASSERT_EQ(st.slots.size(), 1u);
  EXPECT_EQ(st.slots[0].requests, 99u);
  auto ev = std::get<SlotEvent>(*decode(encode(all[8])));
  EXPECT_EQ(ev.kind, SlotEvent::Kind::MaxRequests);
  EXPECT_EQ(ev.requests, 1000u);
  auto sr = std::get<SlotRequests>(*decode(encode(all[10])));
  ASSERT_EQ(sr.requests.size(), 2u);
  EXPECT_EQ(sr.query, 5u);
  EXPECT_EQ(sr.requests[0].path, "/a?b");
  EXPECT_EQ(sr.requests[0].elapsed_ms, 1500u);
  EXPECT_EQ(sr.requests[0].state, "failed");
  EXPECT_EQ(sr.requests[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(sr.requests[1].trace_id, "");
  // trace_id is optional: not written when empty, not required when reading (an older
  // proxy), and an older decoder, which reads only the fields it knows, ignores it.
  EXPECT_EQ(encode(all[10]).find("\"trace_id\":\"\""), std::string::npos);
  auto old_proxy = decode(
      R"({"v":1,"type":"slot_requests","query":5,"app":"a","slot":1,"generation":1,)"
      R"("requests":[{"id":"r","method":"GET","path":"/","elapsed_ms":3,"state":"in_flight"}]})");
  ASSERT_TRUE(old_proxy);
  EXPECT_EQ(std::get<SlotRequests>(*old_proxy).requests.at(0).trace_id, "");
  // Anything but 32 lowercase hex digits is dropped (the supervisor logs it).
  auto forged = decode(
      R"({"v":1,"type":"slot_requests","query":5,"app":"a","slot":1,"generation":1,)"
      R"("requests":[{"id":"r","method":"GET","path":"/","elapsed_ms":3,"state":"in_flight","trace_id":"x\ny"}]})");
  ASSERT_TRUE(forged);
  EXPECT_EQ(std::get<SlotRequests>(*forged).requests.at(0).trace_id, "");
  EXPECT_EQ(std::get<StatsQuery>(*decode(encode(all[11]))).query, 11u);
  EXPECT_EQ(std::get<ProxyStats>(*decode(encode(all[12]))).query, 11u);
  EXPECT_EQ(std::get<ProxyStats>(*decode(encode(all[6]))).query, 0u);  // periodic
  EXPECT_TRUE(std::get<SetDraining>(*decode(encode(all[14]))).draining);
  EXPECT_FALSE(std::get<SetDraining>(*decode(encode(all[15]))).draining);
  EXPECT_EQ(std::get<AccessLogFile>(*decode(encode(all[16]))).path, "/var/log/corral/access.log");
  EXPECT_EQ(type_name(all[16]), "access_log_file");
  EXPECT_FALSE(decode(R"({"v":1,"type":"access_log_file"})").has_value()) << "the path is required";
  // Only a JSON boolean: anything else closes the channel like any malformed record.
  for (const char* bad : {R"({"v":1,"type":"set_draining"})", R"({"v":1,"type":"set_draining","draining":1})",
                          R"({"v":1,"type":"set_draining","draining":"true"})"})
    EXPECT_FALSE(decode(bad).has_value()) << bad;
  auto with_apps = std::get<ProxyStats>(*decode(encode(all[13])));
  ASSERT_EQ(with_apps.apps.size(), 1u);
  EXPECT_EQ(with_apps.apps[0].app, "shop");
  EXPECT_EQ(with_apps.apps[0].requests, 40u);
  EXPECT_EQ(with_apps.apps[0].busy_us, 1'250'000u);
  EXPECT_EQ(with_apps.apps[0].queue_us, 300'000u);
  EXPECT_EQ(with_apps.apps[0].queued, 12u);
  EXPECT_EQ(with_apps.apps[0].rejected, 3u);
  EXPECT_EQ(with_apps.apps[0].peak_in_flight, 6u);
  EXPECT_TRUE(std::get<ProxyStats>(*decode(encode(all[6]))).apps.empty());
  // Fields added after v1 shipped are optional on decode.
  EXPECT_TRUE(decode(R"({"v":1,"type":"set_pool","slots":[]})"));
  EXPECT_TRUE(decode(R"({"v":1,"type":"proxy_stats","requests":1,"in_flight":0,"queued":0,"connections":0})"));
  // ...but an entry that is there must be complete.
  EXPECT_FALSE(decode(R"({"v":1,"type":"proxy_stats","requests":1,"in_flight":0,"queued":0,"connections":0,)"
                      R"("apps":[{"app":"a","requests":1}]})"));
  EXPECT_FALSE(decode(R"({"v":1,"type":"slot_event","app":"a","slot":1,"generation":1,"event":"exploded"})"));
}

TEST(Messages, RejectsMalformed) {
  EXPECT_FALSE(decode("not json"));
  EXPECT_FALSE(decode("[]"));
  EXPECT_FALSE(decode(R"({"type":"proxy_ready","config_generation":1})"));       // no version
  EXPECT_FALSE(decode(R"({"v":2,"type":"proxy_ready","config_generation":1})"));  // other version
  EXPECT_FALSE(decode(R"({"v":1,"type":"launch_missiles"})"));
  EXPECT_FALSE(decode(R"({"v":1,"type":"proxy_ready","config_generation":"x"})"));
  EXPECT_FALSE(decode(R"({"v":1,"type":"set_pool","slots":[{"app":"a"}]})"));
}

TEST(Channel, DeliversMessagesAndFdsOnALoop) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  ev::Loop loop;
  std::vector<std::string> got;
  size_t fds_seen = 0;
  bool closed = false;
  Channel a(loop, UniqueFd(sv[0]), [](Message&&, std::vector<UniqueFd>&&) {}, [](const Error&) {});
  auto b = std::make_unique<Channel>(
      loop, UniqueFd(sv[1]),
      [&](Message&& m, std::vector<UniqueFd>&& fds) {
        got.emplace_back(type_name(m));
        fds_seen += fds.size();
      },
      [&](const Error& e) {
        closed = true;
        EXPECT_EQ(e.code, Errc::Closed);
        loop.break_loop();
      });
  // Many messages, more than a socket buffer holds at once, to exercise the send queue.
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(a.send(ProxyStats{static_cast<uint64_t>(i), 0, 0, 0}));
  ASSERT_TRUE(a.send(SetListeners{{"x"}}, {0}));
  ev::Timer stop(loop, [&] { loop.break_loop(); });
  stop.arm(std::chrono::milliseconds(5000));
  // Once b has everything, shut a's end down and expect b's on_close.
  ev::Timer t(loop, [&] {
    if (got.size() == 2001) {
      shutdown(sv[0], SHUT_RDWR);
    } else {
      t.arm(std::chrono::milliseconds(1));
    }
  });
  t.arm(std::chrono::milliseconds(1));
  loop.run();
  EXPECT_EQ(got.size(), 2001u);
  EXPECT_EQ(got.back(), "set_listeners");
  EXPECT_EQ(fds_seen, 1u);
  EXPECT_TRUE(closed);
}

// Found by fuzz_control: a request path that is not UTF-8 (an HTTP/2 :path, or one cut at
// RequestInfo::kMaxPath inside a character) made encode() throw, which ends the proxy.
TEST(ControlMessages, StringsThatAreNotUtf8StillEncode) {
  SlotRequests r{1, "app", 0, 1, {}};
  r.requests.push_back(SlotRequestInfo{"id", "GET", "/caf\xc3", 5, "in_flight", ""});
  std::string enc = encode(r);
  auto back = decode(enc);
  ASSERT_TRUE(back.has_value()) << back.error().message();
  const auto& got = std::get<SlotRequests>(*back);
  ASSERT_EQ(got.requests.size(), 1u);
  EXPECT_EQ(got.requests[0].path, "/caf\xef\xbf\xbd");  // U+FFFD
  EXPECT_EQ(std::get<WorkerHung>(*decode(encode(WorkerHung{"a\xff", 1, 2, "r"}))).app, "a\xef\xbf\xbd");
}

// Found by fuzz_control: a number that is not an integer in range (1e20 for a uint64_t
// field) was converted with undefined behaviour; now it is a rejected message, like a string.
TEST(ControlMessages, IntegerFieldsTakeOnlyIntegersInRange) {
  for (const char* bad : {R"({"v":1,"type":"stats_query","query":1e20})", R"({"v":1,"type":"stats_query","query":-1})",
                          R"({"v":1,"type":"stats_query","query":1.5})",
                          R"({"v":1,"type":"worker_hung","app":"a","slot":4294967296,"generation":1,"request_id":"r"})",
                          R"({"v":1,"type":"slot_event","app":"a","slot":1,"generation":1,"event":"drained","requests":-5})"}) {
    auto m = decode(bad);
    EXPECT_FALSE(m.has_value()) << bad;
  }
  auto ok = decode(R"({"v":1,"type":"worker_hung","app":"a","slot":-3,"generation":18446744073709551615,"request_id":"r"})");
  ASSERT_TRUE(ok.has_value()) << ok.error().message();
  EXPECT_EQ(std::get<WorkerHung>(*ok).slot, -3);
  EXPECT_EQ(std::get<WorkerHung>(*ok).generation, UINT64_MAX);
}

}  // namespace
}  // namespace corral::control
