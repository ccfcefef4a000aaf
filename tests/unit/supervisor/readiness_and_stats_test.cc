// Pure parts of readiness probing, /proc parsing, reload diffing and rlimits.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include "supervisor/app_pool.h"
#include "supervisor/reload_plan.h"
#include "supervisor/proc_stats.h"
#include "supervisor/usage_sampler.h"
#include "supervisor/readiness_probe.h"

namespace corral::supervisor {
namespace {

TEST(ReadinessProbe, ParsesStatusLines) {
  EXPECT_EQ(ReadinessProbe::parse_status(""), 0);
  EXPECT_EQ(ReadinessProbe::parse_status("HTTP/1."), 0);
  EXPECT_EQ(ReadinessProbe::parse_status("HTTP/1.1 20"), 0);
  EXPECT_EQ(ReadinessProbe::parse_status("HTTP/1.1 204 No Content\r\n"), 204);
  EXPECT_EQ(ReadinessProbe::parse_status("HTTP/1.0 503 x"), 503);
  EXPECT_EQ(ReadinessProbe::parse_status("SSH-2.0-OpenSSH"), -1);
  EXPECT_EQ(ReadinessProbe::parse_status("HTTP/1.1 2x4 "), -1);
  EXPECT_EQ(ReadinessProbe::request_for("/healthz"),
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nUser-Agent: corral-health\r\nConnection: close\r\n\r\n");
}

TEST(ProcStats, ParsesStatWithSpacesAndParensInTheCommand) {
  auto st = parse_proc_stat("1234 (corral-worker: a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 1 0");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->pgrp, 1234);
  EXPECT_EQ(st->utime_ticks, 150u);
  EXPECT_EQ(st->stime_ticks, 25u);
  EXPECT_EQ(st->cutime_ticks, 0u);
  auto parent = parse_proc_stat("77 (corral-worker: cgi#0) S 1 77 77 0 -1 4194560 100 0 0 0 10 5 300 40 20 0 1 0");
  ASSERT_TRUE(parent);
  EXPECT_EQ(parent->cutime_ticks, 300u);  // the CGI programs it ran and reaped
  EXPECT_EQ(parent->cstime_ticks, 40u);
  EXPECT_FALSE(parse_proc_stat("garbage"));
  EXPECT_FALSE(parse_proc_stat("1 (x) S 1 2"));
}

TEST(ProcStats, ParsesPss) {
  const char* rollup =
      "55d5-7ffe ---p 00000000 00:00 0 [rollup]\nRss:                4096 kB\nPss:                1536 kB\n"
      "Pss_Anon:            512 kB\n";
  EXPECT_EQ(parse_pss_bytes(rollup), 1536u * 1024);
  EXPECT_FALSE(parse_pss_bytes("Rss: 1 kB\n"));
}

TEST(ProcStats, ParsesMeminfo) {
  const char* meminfo = "MemTotal:        8029384 kB\nMemFree:          412000 kB\nMemAvailable:    5120000 kB\n";
  auto m = parse_meminfo(meminfo);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->total_bytes, 8029384ull * 1024);
  EXPECT_EQ(m->available_bytes, 5120000ull * 1024);
  EXPECT_FALSE(parse_meminfo("MemTotal: 1 kB\n"));  // kernels before 3.14 have no MemAvailable
  EXPECT_GT(host_memory().total_bytes, 0u);
}

TEST(ProcStats, ParsesSchedstat) {
  EXPECT_EQ(parse_schedstat_wait_ns("953281349 3099031758 649\n"), 3099031758u);
  EXPECT_FALSE(parse_schedstat_wait_ns("12"));
  EXPECT_FALSE(parse_schedstat_wait_ns("12 x 3"));
}

TEST(ProcStats, MeasuresOurOwnGroup) {
  auto u = group_usage(::getpgrp());
  EXPECT_GE(u.cpu_wait_seconds, 0.0);
  EXPECT_EQ(group_usage(::getpgrp(), /*run_queue=*/false).cpu_wait_seconds, 0.0);
  EXPECT_GE(u.processes, 1);
  EXPECT_GT(u.pss_bytes, 0u);
  EXPECT_EQ(group_usage(0).processes, 0);
}

// The loop's view: zeros until the sampler's thread has read the group, then its figures,
// however long the reads take (they happen on that thread).
TEST(ProcStats, TheSamplerReadsAGroupOffTheCallersThread) {
  UsageSampler& sampler = UsageSampler::instance();
  const pid_t group = ::getpgrp();
  ASSERT_TRUE(sampler.wait_fresh(group, std::chrono::seconds(10)));
  const GroupUsage u = sampler.usage(group);
  EXPECT_GE(u.processes, 1);
  EXPECT_GT(u.pss_bytes, 0u);
  EXPECT_EQ(sampler.usage(0).processes, 0);
  EXPECT_FALSE(sampler.wait_fresh(0, std::chrono::milliseconds(10)));
}

TEST(Reload, OnlyProcessLevelChangesNeedANewGeneration) {
  conf::App a;
  a.name = "shop";
  a.command = {"/bin/app"};
  conf::App b = a;
  b.workers = 7;
  b.max_requests = 100;
  b.health_path = "/healthz";
  b.graceful_timeout = std::chrono::milliseconds(1);
  b.timeout = std::chrono::milliseconds(5);
  b.concurrency = 3;
  EXPECT_TRUE(process_changes(a, b).empty());
  b.env = {{"VERSION", "2"}};
  EXPECT_FALSE(process_changes(a, b).empty());
  b = a;
  b.command = {"/bin/app", "--v2"};
  EXPECT_FALSE(process_changes(a, b).empty());
  b = a;
  b.umask = 022;
  EXPECT_FALSE(process_changes(a, b).empty());
  // corral-worker is told its concurrency on the command line.
  a.kind = conf::AppKind::Cgi;
  b = a;
  b.concurrency = 4;
  EXPECT_FALSE(process_changes(a, b).empty());
}

TEST(Reload, RlimitsMapToResources) {
  conf::App a;
  a.rlimits = {{"as", "4GiB"}, {"nofile", "65536"}, {"nproc", "unlimited"}};
  auto r = launcher_rlimits(a);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].resource, RLIMIT_AS);
  EXPECT_EQ(r[0].value, static_cast<rlim_t>(4ull << 30));
  EXPECT_EQ(r[1].resource, RLIMIT_NOFILE);
  EXPECT_EQ(r[1].value, 65536u);
  EXPECT_EQ(r[2].resource, RLIMIT_NPROC);
  EXPECT_EQ(r[2].value, RLIM_INFINITY);
}

TEST(Identity, EmptyOrUnprivilegedMeansUnchanged) {
  auto id = resolve_identity("", "");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->uid, static_cast<uid_t>(-1));
  if (::geteuid() != 0) {
    auto other = resolve_identity("nobody", "");
    ASSERT_TRUE(other);
    EXPECT_EQ(other->uid, static_cast<uid_t>(-1));
  } else {
    EXPECT_FALSE(resolve_identity("no-such-user-corral", ""));
  }
}

}  // namespace
}  // namespace corral::supervisor
