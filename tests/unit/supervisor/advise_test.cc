// supervisor/advise: hand-made status snapshots a window apart → figures and recommendation.
#include "supervisor/advise.h"

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

// An app in a snapshot: `workers` ready workers of `pss` each.
AppSnapshot app(const std::string& name, const std::string& kind, int workers, int concurrency,
                const std::string& worker_class, uint64_t pss = 40 * kMiB) {
  AppSnapshot a;
  a.name = name;
  a.kind = kind;
  a.worker_class = worker_class;
  a.workers = workers;
  a.concurrency = concurrency;
  a.running = a.ready = workers;
  a.pss_bytes = a.ready_pss_bytes = pss * static_cast<uint64_t>(workers);
  return a;
}

StatusSnapshot host(int cores, uint64_t available = 8 * kGiB) {
  StatusSnapshot s;
  s.usable_cores = cores;
  s.mem_available_bytes = available;
  s.mem_total_bytes = 16 * kGiB;
  return s;
}

// The end snapshot: `a` after the window's traffic added to its counters.
struct Traffic {
  uint64_t requests = 0;
  double busy = 0, queue = 0, cpu = 0, cpu_wait = 0;
  uint64_t queued = 0, rejected = 0, peak = 0;
};
AppSnapshot after(AppSnapshot a, const Traffic& t) {
  a.requests += t.requests;
  a.busy_seconds += t.busy;
  a.queue_seconds += t.queue;
  a.cpu_seconds += t.cpu;
  a.cpu_wait_seconds += t.cpu_wait;
  a.queued += t.queued;
  a.rejected += t.rejected;
  a.peak_in_flight = std::max(a.peak_in_flight, t.peak);
  return a;
}

AppAdvice one(const AppSnapshot& before, const AppSnapshot& end_app, double window, int cores,
              AdviseOptions o = {}, uint64_t available = 8 * kGiB) {
  StatusSnapshot s = host(cores, available), e = host(cores, available);
  s.apps.push_back(before);
  e.apps.push_back(end_app);
  auto out = advise(s, e, window, {}, o);
  EXPECT_EQ(out.size(), 1u);
  return out.empty() ? AppAdvice{} : out[0];
}

std::string all_reasons(const AppAdvice& a) {
  std::string out;
  for (auto& r : a.reasons) out += r + "\n";
  return out;
}

// A Flask route that computes for ~12 ms, 8 clients in a loop, one sync worker: the worker is
// busy the whole window, 7 requests wait. More processes, one thread each.
TEST(Advise, CpuBoundWsgiAppGetsMoreProcesses) {
  AppSnapshot a = app("cpu", "wsgi", 1, 1, "sync");
  a.requests = 5000;  // earlier traffic: only the window's difference counts
  a.busy_seconds = 100;
  a.cpu_seconds = 90;
  Traffic t{800, 10.0, 70.0, 9.5, 0.0, 795, 0, 1};
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  EXPECT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_NEAR(r.measured.requests_per_second, 80.0, 1e-9);
  EXPECT_NEAR(r.measured.cpu_per_request, 9.5 / 800, 1e-9);
  EXPECT_NEAR(r.measured.wall_per_request, 10.0 / 800, 1e-9);
  EXPECT_NEAR(r.measured.cpu_share, 0.95, 1e-9);
  EXPECT_NEAR(r.measured.concurrency_used, 1.0, 1e-9);
  EXPECT_NEAR(r.measured.demand, 8.0, 1e-9);
  EXPECT_EQ(r.recommended.workers, 3);  // 2 cores + 1
  EXPECT_EQ(r.recommended.concurrency, 1);
  EXPECT_EQ(r.recommended.worker_class, "sync");
  EXPECT_EQ(r.memory_recommended_bytes, 3 * 40 * kMiB);
  EXPECT_NE(all_reasons(r).find("GIL"), std::string::npos) << all_reasons(r);
  EXPECT_NE(all_reasons(r).find("95%"), std::string::npos);
  // The text report and the TOML lines say the same.
  EXPECT_NE(to_text(r).find("1 worker x 1 (sync) -> 3 workers x 1 (sync)"), std::string::npos) << to_text(r);
  EXPECT_EQ(toml_lines(r), "[app.cpu]\nworkers = 3\nconcurrency = 1\nworker_class = \"sync\"\n");
  auto j = to_json(r);
  EXPECT_EQ(j["verdict"], "change");
  EXPECT_EQ(j["recommended"]["workers"], 3);
  EXPECT_EQ(j["current"]["workers"], 1);
}

// Waiting for a core counts as wanting the CPU: on a machine busy with other work, a
// CPU-bound route still reads as CPU-bound.
TEST(Advise, RunQueueWaitCountsAsCpu) {
  AppSnapshot a = app("cpu", "wsgi", 1, 1, "sync");
  Traffic t{400, 10.0, 60.0, 5.0, 4.5, 395, 0, 1};
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  EXPECT_NEAR(r.measured.cpu_share, 0.95, 1e-9);
  EXPECT_EQ(r.recommended.worker_class, "sync");
  EXPECT_GT(r.recommended.workers, 1);
}

// A route that sleeps 50 ms on a socket, 16 clients, one sync worker: 4% CPU. Threads.
TEST(Advise, IoBoundWsgiAppGetsThreads) {
  AppSnapshot a = app("io", "wsgi", 1, 1, "sync");
  Traffic t{190, 10.0, 150.0, 0.4, 0.0, 185, 0, 1};
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  ASSERT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_LT(r.measured.cpu_share, 0.05);
  EXPECT_NEAR(r.measured.demand, 16.0, 1e-9);
  EXPECT_EQ(r.recommended.workers, 1);
  EXPECT_EQ(r.recommended.worker_class, "gthread");
  EXPECT_EQ(r.recommended.concurrency, 20);  // 16 with 25 % headroom
  EXPECT_NE(all_reasons(r).find("thread-safe"), std::string::npos) << all_reasons(r);
}

// Mostly waiting, but hundreds of requests at once: more than 32 threads per process would
// carry; greenlets when gevent is there, the most threads otherwise.
TEST(Advise, VeryIoBoundWithHighDemandGetsGevent) {
  AppSnapshot a = app("poll", "wsgi", 2, 8, "gthread");
  Traffic t{3800, 160.0, 1840.0, 0.64, 0.0, 3700, 0, 16};  // 200 in the app, 0.4 % CPU: 0.8 cores
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  ASSERT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_EQ(r.recommended.worker_class, "gevent");
  EXPECT_EQ(r.recommended.workers, 1);
  EXPECT_EQ(r.recommended.concurrency, 250);
  EXPECT_NE(all_reasons(r).find("cooperate with gevent"), std::string::npos);

  AdviseOptions no_gevent;
  no_gevent.gevent_available = false;
  AppAdvice t2 = one(a, after(a, t), 10.0, 2, no_gevent);
  EXPECT_EQ(t2.recommended.worker_class, "gthread");
  EXPECT_EQ(t2.recommended.concurrency, 32);
  EXPECT_EQ(t2.recommended.workers, 3);  // cores + 1: the most processes worth having
  EXPECT_NE(all_reasons(t2).find("python3-gevent"), std::string::npos) << all_reasons(t2);
}

// Light traffic, nothing queued: adequate; fewer workers would still do.
TEST(Advise, IdleAppIsAdequateAndMaySaveMemory) {
  AppSnapshot a = app("quiet", "wsgi", 4, 1, "sync", 60 * kMiB);
  Traffic t{50, 0.5, 0.0, 0.4, 0.0, 0, 0, 1};
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  EXPECT_EQ(r.verdict, AppAdvice::Verdict::Adequate) << all_reasons(r);
  EXPECT_EQ(r.recommended, r.current);
  ASSERT_TRUE(r.fewer_workers);
  EXPECT_EQ(*r.fewer_workers, 1);
  EXPECT_NE(all_reasons(r).find("180 MiB"), std::string::npos) << all_reasons(r);  // 3 × 60 MiB
  EXPECT_EQ(to_json(r)["fewer_workers"], 1);
}

// CPU-bound on 8 cores wants 9 processes of 1 GiB, with 2 GiB available and 1 GiB in use:
// 80 % of 2 GiB + 1 GiB = 2.6 GiB holds 2.
TEST(Advise, MemoryCapsTheWorkers) {
  AppSnapshot a = app("big", "wsgi", 1, 1, "sync", kGiB);
  Traffic t{800, 10.0, 70.0, 9.5, 0.0, 795, 0, 1};
  AppAdvice r = one(a, after(a, t), 10.0, 8, {}, 2 * kGiB);
  ASSERT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_EQ(r.recommended.workers, 2);
  EXPECT_EQ(r.memory_recommended_bytes, 2 * kGiB);
  EXPECT_LE(r.memory_recommended_bytes, r.memory_budget_bytes);
  EXPECT_NE(all_reasons(r).find("would not fit"), std::string::npos) << all_reasons(r);

  // Threads make up for processes memory does not allow.
  AppSnapshot io = app("io", "wsgi", 1, 1, "sync", kGiB);
  Traffic many{1900, 10.0, 1490.0, 0.2, 0.0, 1890, 0, 1};  // 150 in the app, 2 % CPU: 3 cores, 6 processes
  AppAdvice m = one(io, after(io, many), 10.0, 8, {}, 2 * kGiB);
  EXPECT_EQ(m.recommended.workers, 1);  // a new generation starts next to the old one: 80 % of 2 GiB
  EXPECT_EQ(m.recommended.worker_class, "gthread");
  EXPECT_EQ(m.recommended.concurrency, 32);  // the most threads a process carries
}

TEST(Advise, NoTrafficMeansNoRecommendation) {
  AppSnapshot a = app("asleep", "wsgi", 3, 1, "sync");
  AppAdvice r = one(a, a, 60.0, 2);
  EXPECT_EQ(r.verdict, AppAdvice::Verdict::NoData);
  EXPECT_EQ(r.recommended, r.current);
  EXPECT_NE(all_reasons(r).find("No request"), std::string::npos);
  EXPECT_EQ(to_json(r)["verdict"], "no_data");
  // Only rejections: still no data, and it says so.
  AppAdvice rej = one(a, after(a, Traffic{0, 0, 0, 0, 0, 0, 12, 0}), 60.0, 2);
  EXPECT_EQ(rej.verdict, AppAdvice::Verdict::NoData);
  EXPECT_NE(all_reasons(rej).find("12 requests were turned away"), std::string::npos) << all_reasons(rej);
}

TEST(Advise, CountersThatWentBackMeanNoRecommendation) {
  AppSnapshot a = app("x", "wsgi", 1, 1, "sync");
  a.requests = 1000;
  a.busy_seconds = 10;
  AppSnapshot e = app("x", "wsgi", 1, 1, "sync");
  e.requests = 10;
  AppAdvice r = one(a, e, 10.0, 2);
  EXPECT_EQ(r.verdict, AppAdvice::Verdict::NoData);
  EXPECT_NE(all_reasons(r).find("started again"), std::string::npos);
}

// Already at cores + 1 processes and CPU-bound: requests queue, but nothing better exists.
TEST(Advise, SaturatedHostIsAtLimit) {
  AppSnapshot a = app("cpu", "wsgi", 3, 1, "sync");
  Traffic t{1600, 30.0, 100.0, 19.0, 9.0, 1500, 0, 3};
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  EXPECT_EQ(r.verdict, AppAdvice::Verdict::AtLimit) << all_reasons(r);
  EXPECT_EQ(r.recommended, r.current);
  EXPECT_NE(all_reasons(r).find("only more cores"), std::string::npos) << all_reasons(r);
}

// php-cgi: one request per process, so more processes; concurrency stays 1.
TEST(Advise, FastcgiGetsMoreProcesses) {
  AppSnapshot a = app("php", "fastcgi", 2, 1, "", 25 * kMiB);
  Traffic t{400, 20.0, 60.0, 2.0, 0.0, 380, 0, 2};  // 8 in the app, 10 % CPU
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  ASSERT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_EQ(r.recommended.concurrency, 1);
  EXPECT_EQ(r.recommended.workers, 10);
  EXPECT_TRUE(r.recommended.worker_class.empty());
  EXPECT_EQ(toml_lines(r), "[app.php]\nworkers = 10\nconcurrency = 1\n");
}

// cgi: one corral-worker runs a process per request; its concurrency is the lever.
TEST(Advise, CgiGetsConcurrency) {
  AppSnapshot a = app("cgi", "cgi", 1, 2, "");
  Traffic t{200, 20.0, 40.0, 1.0, 0.0, 190, 0, 2};  // 6 in the app, 5 % CPU
  AppAdvice r = one(a, after(a, t), 10.0, 2);
  ASSERT_EQ(r.verdict, AppAdvice::Verdict::Change) << all_reasons(r);
  EXPECT_EQ(r.recommended.workers, 1);
  EXPECT_EQ(r.recommended.concurrency, 8);
}

TEST(Advise, PeakComesFromSamplesAndTheCumulativePeak) {
  AppSnapshot a = app("io", "wsgi", 1, 8, "gthread");
  a.peak_in_flight = 8;  // before the window
  Traffic t{100, 2.0, 0.0, 0.1, 0.0, 0, 0, 0};
  StatusSnapshot s = host(2), e = host(2);
  s.apps.push_back(a);
  e.apps.push_back(after(a, t));
  auto r = advise(s, e, 10.0, {{{"io", 3}}, {{"io", 5}}, {{"other", 9}}}, {});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].measured.peak_in_flight, 5u);  // the cumulative 8 predates the window
  e.apps[0].peak_in_flight = 9;                 // it moved during the window: reached in it
  r = advise(s, e, 10.0, {{{"io", 3}}}, {});
  EXPECT_EQ(r[0].measured.peak_in_flight, 9u);
  // Only one app asked for; unknown names give nothing.
  EXPECT_EQ(advise(s, e, 10.0, {}, {}, "io").size(), 1u);
  EXPECT_TRUE(advise(s, e, 10.0, {}, {}, "nosuch").empty());
}

TEST(Advise, ParsesTheStatusBody) {
  auto j = nlohmann::json::parse(R"({
    "host": {"usable_cores": 4, "mem_available_bytes": 1000, "mem_total_bytes": 2000},
    "apps": [
      {"name": "a", "kind": "wsgi", "worker_class": "gthread", "concurrency": 4, "desired": 2,
       "workers": [{"pid": 10, "state": "ready", "rss": 300, "in_flight": 2},
                   {"pid": 11, "state": "starting", "rss": 100, "in_flight": 0},
                   {"pid": 0, "state": "backoff", "rss": 0, "in_flight": 0}],
       "totals": {"requests": 7, "busy_seconds": 1.5, "queue_seconds": 0.5, "queued": 3, "rejected": 1,
                  "cpu_seconds": 0.25, "cpu_wait_seconds": 0.125, "peak_in_flight": 4}},
      {"name": "old", "kind": "http", "concurrency": 1, "desired": 1, "removed": true, "workers": []}
    ]})");
  StatusSnapshot s = parse_status(j);
  EXPECT_EQ(s.usable_cores, 4);
  EXPECT_EQ(s.mem_available_bytes, 1000u);
  ASSERT_EQ(s.apps.size(), 2u);
  const AppSnapshot& a = s.apps[0];
  EXPECT_EQ(a.worker_class, "gthread");
  EXPECT_EQ(a.workers, 2);
  EXPECT_EQ(a.concurrency, 4);
  EXPECT_EQ(a.running, 2);
  EXPECT_EQ(a.ready, 1);
  EXPECT_EQ(a.ready_pss_bytes, 300u);
  EXPECT_EQ(a.in_flight, 2u);
  EXPECT_EQ(a.requests, 7u);
  EXPECT_DOUBLE_EQ(a.busy_seconds, 1.5);
  EXPECT_DOUBLE_EQ(a.cpu_wait_seconds, 0.125);
  EXPECT_EQ(a.peak_in_flight, 4u);
  EXPECT_TRUE(s.apps[1].removed);
  // A removed app gets no advice.
  EXPECT_EQ(advise(s, s, 1.0, {}, {}).size(), 1u);
  // An older supervisor: no totals, no host.
  StatusSnapshot bare = parse_status(nlohmann::json::parse(R"({"apps":[{"name":"b","kind":"http"}]})"));
  EXPECT_EQ(bare.usable_cores, 1);
  EXPECT_EQ(bare.apps[0].requests, 0u);
}

}  // namespace
}  // namespace corral::supervisor
