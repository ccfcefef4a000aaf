// The state an upgrade in place hands to the next image: round trip, version and format
// checks, the fds it names, the memfd it travels in; and the parts that keep their own
// state (DeathLog, AppTotals, RuntimeOverrides).
#include "supervisor/upgrade_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "supervisor/app_totals.h"
#include "supervisor/death_log.h"
#include "supervisor/overrides.h"

namespace corral::supervisor {
namespace {

UpgradeState sample() {
  UpgradeState st;
  st.from_version = "1.2.3";
  st.binary = "/usr/sbin/corral-supervisor";
  st.config_file = "/etc/corral/corral.toml";
  st.config_text = "[app.a]\ncommand = [\"/bin/true\"]\n# ünïcode and \"quotes\"\n";
  st.overrides = {{"a", {{"workers", 3}, {"file_workers", 1}}}};
  st.config_generation = 7;
  st.listeners = {{"127.0.0.1:0", "127.0.0.1:41234", 5}, {"[::]:8443", "[::]:8443", 6}};
  st.has_admin = true;
  st.admin = {"127.0.0.1:9180", "127.0.0.1:9180", 7};
  st.control_path = "/run/corral/control.sock";
  st.control_fd = 8;
  st.control_dev = 64769;
  st.control_ino = 123456789;
  st.draining = true;
  st.drain_since_ns = 987654321;
  st.ready_sent = true;
  st.unattributed_leftovers = {"pid 812 (sleep 600)"};
  st.ignored_children = {{4242, 1234567ull}};
  st.proxy = {1234, 9, true, 2, 1, nlohmann::json{{"pid", 1200}, {"reason", "signal"}}, 55, 0};
  PoolState p;
  p.app = "a";
  p.app_generation = 2;
  p.desired = 3;
  p.next_index = 5;
  p.deaths = {{"exit", 2}, {"reload", 1}};
  p.death_log = nlohmann::json::array({{{"worker", 1}, {"reason", "exit"}}});
  p.totals = {{"exited_cpu", 1.5}};
  p.configs = {{1, "{\"old\":1}"}, {2, "{\"new\":2}"}};
  SlotState s;
  s.index = 3;
  s.app_generation = 2;
  s.state = "ready";
  s.pid = 2345;
  s.generation = 4;
  s.restarts = 3;
  s.retire_reason = "max_requests";
  s.listen_fd = 10;
  s.stdout_fd = 11;
  s.stderr_fd = 12;
  s.started_at_ns = 1'000'000'000'000;
  s.kill_at_ns = 2'000'000'000'000;
  s.binary = {1, 2, 3, 4};
  p.slots = {s};
  PoolState retired = p;
  retired.app = "gone";
  retired.retired = true;
  retired.slots[0].listen_fd = 13;
  retired.slots[0].stdout_fd = -1;
  st.pools = {p, retired};
  st.waiter_fds = {14};
  return st;
}

TEST(UpgradeState, RoundTripKeepsEveryField) {
  const UpgradeState st = sample();
  auto back = decode_state(encode_state(st));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, st);
  EXPECT_EQ(back->pools[1].slots[0].listen_fd, 13);
  EXPECT_EQ(back->config_text, st.config_text);
}

TEST(UpgradeState, FdsAreEveryNumberOnce) {
  UpgradeState st = sample();
  st.waiter_fds.push_back(5);  // named twice: listed once
  EXPECT_EQ(st.fds(), (std::vector<int>{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}));
}

TEST(UpgradeState, UnknownVersionIsRefused) {
  auto j = nlohmann::json::parse(encode_state(sample()));
  j["version"] = kUpgradeStateVersion + 1;
  auto r = decode_state(j.dump());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("state format version " + std::to_string(kUpgradeStateVersion + 1)),
            std::string::npos)
      << r.error().context;
  j.erase("version");
  EXPECT_FALSE(decode_state(j.dump()));
}

TEST(UpgradeState, OtherDocumentsAreRefused) {
  EXPECT_FALSE(decode_state(""));
  EXPECT_FALSE(decode_state("not json"));
  EXPECT_FALSE(decode_state("[1,2]"));
  EXPECT_FALSE(decode_state(R"({"version":1})"));  // no format
  auto j = nlohmann::json::parse(encode_state(sample()));
  j["pools"] = "not a list";
  auto r = decode_state(j.dump());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().context.find("malformed"), std::string::npos) << r.error().context;
}

TEST(UpgradeState, MissingFieldsTakeTheirDefaults) {
  // An older writer of the same version: fields added since read as their defaults.
  auto r = decode_state(R"({"format":"corral-supervisor-state","version":1,"config_file":"/x.toml"})");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->config_file, "/x.toml");
  EXPECT_EQ(r->control_fd, -1);
  EXPECT_EQ(r->proxy.pid, 0);
}

TEST(UpgradeState, MemfdCarriesTheBytesAndIsSealed) {
  const std::string bytes = encode_state(sample());
  auto fd = write_state_memfd(bytes);
  ASSERT_TRUE(fd) << fd.error().message();
  EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
  auto back = read_state_fd(fd->get());
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, bytes);
  EXPECT_LT(::write(fd->get(), "x", 1), 0);  // sealed against writes
}

TEST(UpgradeState, CloexecIsClearedAndSetAgain) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ASSERT_TRUE(set_cloexec({p[0], p[1]}, false));
  EXPECT_FALSE(::fcntl(p[0], F_GETFD) & FD_CLOEXEC);
  ASSERT_TRUE(set_cloexec({p[0], p[1]}, true));
  EXPECT_TRUE(::fcntl(p[1], F_GETFD) & FD_CLOEXEC);
  EXPECT_FALSE(set_cloexec({-1}, true));
  ::close(p[0]);
  ::close(p[1]);
}

TEST(UpgradeState, SteadyTimesSurviveNanoseconds) {
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(from_ns(to_ns(now)), now);
}

TEST(UpgradeState, DeathLogRoundTrip) {
  DeathLog log;
  DeathRecord r;
  r.worker = 2;
  r.pid = 77;
  r.reason = "signal";
  r.exit = "killed by signal 9 (SIGKILL)";
  r.serving = std::vector<control::SlotRequestInfo>{{"rid1", "GET", "/x", 12, "in_flight", "abc"}};
  r.line = "worker 2 pid 77 ...";
  r.leftovers = "pid 99 (sleep)";
  log.add(r);
  DeathRecord r2;
  r2.worker = 3;
  log.add(r2);
  DeathLog back;
  back.restore(log.state());
  EXPECT_EQ(back.json(), log.json());
  EXPECT_EQ(back.size(), 2u);
}

TEST(UpgradeState, AppTotalsRoundTrip) {
  AppTotals t;
  control::AppStats s;
  s.app = "a";
  s.requests = 10;
  s.busy_us = 5000;
  t.on_proxy_stats(s, 100);
  s.requests = 3;  // a new proxy
  t.on_proxy_stats(s, 101);
  t.add_exited(2.5, 0.5);
  AppTotals back;
  back.restore(t.state());
  EXPECT_EQ(back.to_json(1, 1), t.to_json(1, 1));
  // The same proxy goes on counting from where it was.
  s.requests = 4;
  t.on_proxy_stats(s, 101);
  back.on_proxy_stats(s, 101);
  EXPECT_EQ(back.to_json(0, 0), t.to_json(0, 0));
}

TEST(UpgradeState, OverridesRoundTrip) {
  conf::App before;
  before.name = "a";
  before.kind = conf::AppKind::Wsgi;
  before.workers = 2;
  before.worker_class = "sync";
  conf::App after = before;
  after.workers = 5;
  after.concurrency = 4;
  after.worker_class = "gthread";
  RuntimeOverrides o;
  o.record(before, after);
  RuntimeOverrides back;
  back.restore(o.state());
  EXPECT_EQ(back.describe("a"), o.describe("a"));
  EXPECT_EQ(back.state(), o.state());
  conf::Config c;
  c.apps = {before};
  conf::Config c2 = c;
  (void)o.apply_to(c);
  (void)back.apply_to(c2);
  EXPECT_EQ(c, c2);
  EXPECT_EQ(c2.apps[0].workers, 5);
}

}  // namespace
}  // namespace corral::supervisor
