// proxy/metrics and proxy/admin: histogram figures, reason labels, the reject table, and
// the Prometheus exposition AdminService renders from a Runtime.
#include <gtest/gtest.h>

#include <thread>

#include "conf/config.h"
#include "proxy/admin/admin.h"
#include "proxy/metrics/metrics.h"
#include "proxy/runtime.h"

namespace corral::proxy {
namespace {

TEST(Metrics, HistogramBucketsSumAndQuantiles) {
  metrics::Histogram h;
  for (int i = 0; i < 90; ++i) h.observe(0.004);  // bucket (0.0025, 0.005]
  for (int i = 0; i < 10; ++i) h.observe(0.2);    // bucket (0.1, 0.25]
  h.observe(100);                                  // +Inf
  metrics::HistogramTotals t;
  t.add(h);
  EXPECT_EQ(t.count(), 101u);
  EXPECT_EQ(t.buckets[2], 90u);
  EXPECT_EQ(t.buckets[7], 10u);
  EXPECT_EQ(t.buckets[metrics::kBucketCount - 1], 1u);
  EXPECT_NEAR(static_cast<double>(t.sum_us) / 1e6, 90 * 0.004 + 10 * 0.2 + 100, 1e-3);
  double p50 = t.quantile(0.5);
  EXPECT_GT(p50, 0.0025);
  EXPECT_LE(p50, 0.005);
  double p95 = t.quantile(0.95);
  EXPECT_GT(p95, 0.1);
  EXPECT_LE(p95, 0.25);
  EXPECT_EQ(t.quantile(1.0), 30.0);  // the +Inf bucket reports the last finite bound
  metrics::HistogramTotals empty;
  EXPECT_EQ(empty.quantile(0.5), 0.0);
  auto d = t.minus(t);
  EXPECT_EQ(d.count(), 0u);
}

TEST(Metrics, ReasonLabelsAreStable) {
  EXPECT_EQ(metrics::reason_label("bare LF in header block"), "bare_lf_in_header_block");
  EXPECT_EQ(metrics::reason_label("Host does not match the request-target authority"),
            "host_does_not_match_the_request_target_authority");
  EXPECT_EQ(metrics::reason_label(":authority and host disagree"), "authority_and_host_disagree");
  EXPECT_EQ(metrics::reason_label(""), "unknown");
}

TEST(Metrics, RejectTableCountsByReasonStatusAndProtocol) {
  metrics::LoopCounters lc;
  static const char* const kA = "invalid method";
  static const char* const kB = "several Host fields";
  lc.reject(kA, 400, metrics::Protocol::Http1);
  lc.reject(kA, 400, metrics::Protocol::Http1);
  lc.reject(kA, 400, metrics::Protocol::Http2);
  lc.reject(kB, 400, metrics::Protocol::Http1);
  ASSERT_EQ(lc.reject_slots_used.load(), 2u);
  EXPECT_EQ(lc.rejects[0].count[0].get(), 2u);
  EXPECT_EQ(lc.rejects[0].count[1].get(), 1u);
  EXPECT_EQ(lc.rejects[1].count[0].get(), 1u);
  // More distinct reasons than slots: counted, not lost.
  static char names[metrics::kRejectSlots + 5][8];
  for (size_t i = 0; i < metrics::kRejectSlots + 5; ++i) lc.reject(names[i], 400, metrics::Protocol::Http1);
  EXPECT_EQ(lc.reject_slots_used.load(), metrics::kRejectSlots);
  EXPECT_EQ(lc.rejects_overflow.get(), 7u);
}

TEST(Metrics, CountersWrittenByOneThreadAreReadByAnother) {
  metrics::PerThread<metrics::RouteCounters> blocks(2);
  std::thread a([&] {
    for (int i = 0; i < 100000; ++i) blocks.at(0).requests[0][1].add();
  });
  std::thread b([&] {
    for (int i = 0; i < 100000; ++i) blocks.at(1).requests[0][1].add();
  });
  a.join();
  b.join();
  EXPECT_EQ(blocks.at(0).requests[0][1].get() + blocks.at(1).requests[0][1].get(), 200000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(&blocks.at(1)) % 64, 0u) << "per-thread blocks share no cache line";
}

conf::Config two_app_config() {
  conf::Config c;
  c.proxy.admin = "127.0.0.1:9180";
  conf::App a;
  a.name = "shop";
  conf::App b;
  b.name = "blog";
  c.apps = {a, b};
  conf::Route r1;
  r1.path = "/";
  r1.app = "shop";
  conf::Route r2;
  r2.host = "blog.example";
  r2.path = "/";
  r2.app = "blog";
  c.routes = {r2, r1};
  conf::Listener l;
  l.address = "127.0.0.1:8080";
  c.listeners = {l};
  return c;
}

TEST(Admin, RendersPerRouteCountersAndKeepsThemAcrossReloads) {
  RuntimeState state;
  state.threads = 2;
  auto rt = make_runtime(two_app_config(), 1, state);
  ASSERT_TRUE(rt->admin_listener);
  EXPECT_TRUE(rt->admin_listener->admin);
  const Router::Entry* shop = rt->router.find("x.example", "/cart");
  ASSERT_TRUE(shop && shop->metrics);
  EXPECT_EQ(shop->metrics->route, "/");
  shop->metrics->counters.at(0).requests[0][1].add(3);
  shop->metrics->counters.at(1).requests[1][1].add(2);
  shop->metrics->counters.at(1).duration.observe(0.02);
  metrics::LoopCounters lc;
  lc.reject("several Host fields", 400, metrics::Protocol::Http1);

  AdminService admin;
  admin.set_loops({&lc});
  std::string text = admin.render_metrics(*rt);
  EXPECT_NE(text.find(R"(corral_requests_total{app="shop",route="/",code="2xx",protocol="http1"} 3)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(corral_requests_total{app="shop",route="/",code="2xx",protocol="h2"} 2)"), std::string::npos);
  EXPECT_NE(text.find(R"(corral_requests_total{app="blog",route="blog.example/",code="2xx",protocol="http1"} 0)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(corral_request_duration_seconds_bucket{app="shop",route="/",le="0.025"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(corral_request_duration_seconds_count{app="shop",route="/"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(corral_rejected_requests_total{reason="several_host_fields",status="400",protocol="http1"} 1)"),
            std::string::npos);
  // No worker: not ready, and /readyz says which app.
  EXPECT_NE(text.find("corral_ready 0"), std::string::npos);
  LocalResponse r = admin.handle("GET", "/readyz", *rt);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("app shop: no ready worker"), std::string::npos) << r.body;
  EXPECT_EQ(admin.handle("GET", "/healthz", *rt).status, 200);
  EXPECT_EQ(admin.handle("DELETE", "/metrics", *rt).status, 405);
  EXPECT_EQ(admin.handle("GET", "/nope", *rt).status, 404);

  // A reload that keeps the route keeps its counters; a removed route's block goes.
  auto next = two_app_config();
  next.routes.pop_back();  // shop's route removed
  auto rt2 = make_runtime(next, 2, state);
  EXPECT_EQ(rt2->router.find("blog.example", "/")->metrics, rt->router.find("blog.example", "/")->metrics);
  EXPECT_EQ(state.routes.size(), 1u);
  auto rt3 = make_runtime(two_app_config(), 3, state);
  EXPECT_EQ(rt3->router.find("x.example", "/")->metrics->counters.at(0).requests[0][1].get(), 0u)
      << "a route added back starts from zero";
}

TEST(Admin, TunnelBytesCountPerAppAndSurviveARouteRemoved) {
  RuntimeState state;
  state.threads = 2;
  auto rt = make_runtime(two_app_config(), 1, state);
  ASSERT_EQ(rt->apps[0].name, "shop");
  // What the tunnels of two loop threads added.
  rt->apps[0].dispatcher->tunnel_bytes(0).up.add(100);
  rt->apps[0].dispatcher->tunnel_bytes(1).up.add(20);
  rt->apps[0].dispatcher->tunnel_bytes(1).down.add(7);
  metrics::LoopCounters lc;
  AdminService admin;
  admin.set_loops({&lc});
  std::string text = admin.render_metrics(*rt);
  EXPECT_NE(text.find(R"(corral_tunnel_bytes_total{app="shop",direction="up"} 120)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(corral_tunnel_bytes_total{app="shop",direction="down"} 7)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(corral_tunnel_bytes_total{app="blog",direction="up"} 0)"), std::string::npos) << text;

  // A reload that removes the app's only route: the app stays, and so does its count (a
  // counter never goes down while its labels exist).
  auto next = two_app_config();
  next.routes.pop_back();  // shop's route removed
  auto rt2 = make_runtime(next, 2, state);
  text = admin.render_metrics(*rt2);
  EXPECT_NE(text.find(R"(corral_tunnel_bytes_total{app="shop",direction="up"} 120)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(corral_tunnel_bytes_total{app="shop",direction="down"} 7)"), std::string::npos) << text;
}

TEST(Admin, LabelValuesAreEscaped) {
  std::string out;
  metrics::append_label_value(out, "a\"b\\c\nd");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd");
}

}  // namespace
}  // namespace corral::proxy
