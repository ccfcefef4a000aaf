#include "proxy/admin/status_page.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <gtest/gtest.h>

namespace corral::proxy {
namespace {

using nlohmann::json;

class HoldWaiter : public Waiter {
 public:
  void grant(Lease l) override { lease = std::move(l); }
  Lease lease;
};

class StatusJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conf::Config cfg;
    conf::Listener l;
    l.address = "127.0.0.1:0";
    cfg.listeners.push_back(l);
    conf::Route r1;
    r1.host = "shop.example.com";
    r1.path = "/";
    r1.app = "shop";
    conf::Route r2;
    r2.path = "/blog";
    r2.app = "blog";
    cfg.routes = {r1, r2};
    conf::App blog;
    blog.name = "blog";
    blog.kind = conf::AppKind::Wsgi;
    conf::App shop;
    shop.name = "shop";
    shop.kind = conf::AppKind::Http;
    shop.concurrency = 1;
    cfg.apps = {blog, shop};
    rt_ = make_runtime(cfg, 7, dispatchers_);
    control::SlotInfo s0;
    s0.app = "shop";
    s0.slot = 0;
    s0.generation = 2;  // the worker's incarnation
    s0.path = "/tmp/none.0.sock";
    control::SlotInfo s1 = s0;
    s1.slot = 1;
    s1.generation = 1;
    s1.path = "/tmp/none.1.sock";
    dispatchers_["shop"]->update_slots({s0, s1});
    figures_ = json::parse(R"({"apps": [
      {"name": "shop", "kind": "http", "deaths": {"signal": 1, "reload": 2},
       "workers": [
         {"id": 0, "incarnation": 2, "pid": 100, "generation": 3, "state": "ready", "requests": 40, "in_flight": 0,
          "rss": 1048576, "cpu_seconds": 0.5, "uptime_seconds": 12.5, "restarts": 1, "socket": "/x"},
         {"id": 1, "incarnation": 1, "pid": 101, "generation": 3, "state": "ready", "requests": 41, "in_flight": 0,
          "rss": 2097152, "cpu_seconds": 0.25, "uptime_seconds": 30.0, "restarts": 0},
         {"id": 2, "incarnation": 1, "pid": 102, "generation": 4, "state": "starting", "requests": 0,
          "rss": 0, "cpu_seconds": 0.0, "uptime_seconds": 0.1, "restarts": 0}],
       "recent_deaths": [{"time_ms": 1700000000000, "worker": 0, "pid": 99, "reason": "signal", "expected": false}]},
      {"name": "gone", "removed": true, "workers": []}]})");
  }

  json build(const StatusInputs& in, int64_t since = 0) {
    std::string body = status_json(in, *rt_, since);
    json j = json::parse(body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << body;
    return j;
  }

  std::map<std::string, std::shared_ptr<AppDispatcher>> dispatchers_;
  std::shared_ptr<const Runtime> rt_;
  json figures_;
};

TEST_F(StatusJsonTest, CarriesTheSchema) {
  // One request in flight on the shop (worker 0 or 1: the least loaded; ties rotate).
  auto w = std::make_shared<HoldWaiter>();
  Lease lease;
  ASSERT_EQ(dispatchers_["shop"]->acquire(w, lease), AppDispatcher::Outcome::Granted);
  StatusInputs in;
  in.now_ms = 1'700'000'100'000;
  in.started_ms = 1'700'000'000'000;
  in.ready = true;
  in.figures = &figures_;
  in.figures_age_ms = 420;
  in.totals["shop"] = {1234, 5};
  json j = build(in);
  EXPECT_EQ(j["version"], CORRAL_VERSION);
  EXPECT_EQ(j["generation"], 7);
  EXPECT_EQ(j["now_ms"], 1'700'000'100'000);
  EXPECT_EQ(j["started_ms"], 1'700'000'000'000);
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["not_ready"], "");
  EXPECT_EQ(j["stopping"], false);
  EXPECT_EQ(j["figures_age_ms"], 420);
  EXPECT_EQ(j["listeners"], json::parse(R"([{"address": "127.0.0.1:0", "tls": false}])"));
  EXPECT_EQ(j["routes"], json::parse(R"([{"host": "shop.example.com", "path": "/", "app": "shop"},
                                          {"host": "", "path": "/blog", "app": "blog"}])"));
  ASSERT_EQ(j["apps"].size(), 2u);
  const json& blog = j["apps"][0];
  EXPECT_EQ(blog["name"], "blog");
  EXPECT_EQ(blog["kind"], "wsgi");
  EXPECT_EQ(blog["requests"], 0);
  EXPECT_EQ(blog["workers"], json::array());
  EXPECT_EQ(blog["exits"], json::object());
  EXPECT_EQ(blog["recent_deaths"], json::array());
  const json& shop = j["apps"][1];
  EXPECT_EQ(shop["name"], "shop");
  EXPECT_EQ(shop["kind"], "http");
  EXPECT_EQ(shop["queued"], 0);
  EXPECT_EQ(shop["in_flight"], 1);
  EXPECT_EQ(shop["requests"], 1234);
  EXPECT_EQ(shop["errors"], 5);
  EXPECT_EQ(shop["exits"], json::parse(R"({"signal": 1, "reload": 2})"));
  ASSERT_EQ(shop["recent_deaths"].size(), 1u);
  EXPECT_EQ(shop["recent_deaths"][0]["pid"], 99);
  ASSERT_EQ(shop["workers"].size(), 3u);
  const int busy = lease.slot();
  for (const json& wk : shop["workers"]) {
    for (const char* k : {"id", "pid", "generation", "state", "in_flight", "requests", "rss", "cpu_seconds",
                          "uptime_seconds", "restarts"})
      EXPECT_TRUE(wk.contains(k)) << k << " in " << wk.dump();
    EXPECT_EQ(wk.size(), 10u) << "only the schema's fields: " << wk.dump();
    const int id = wk["id"];
    // In flight and requests are the dispatcher's (live) for the incarnation it serves.
    EXPECT_EQ(wk["in_flight"], id == busy ? 1 : 0) << wk.dump();
    if (id == 2) EXPECT_EQ(wk["requests"], 0);  // starting: not in the dispatcher, the figures' value
    else EXPECT_EQ(wk["requests"], id == busy ? 1 : 0) << wk.dump();
  }
  EXPECT_EQ(shop["workers"][0]["pid"], 100);
  EXPECT_EQ(shop["workers"][0]["generation"], 3);
  EXPECT_EQ(shop["workers"][0]["rss"], 1048576);
  EXPECT_EQ(shop["workers"][0]["restarts"], 1);
  EXPECT_EQ(shop["workers"][2]["state"], "starting");
  EXPECT_EQ(j["series"], json::parse(R"({"blog": [], "shop": []})"));
  lease.release();
}

TEST_F(StatusJsonTest, InFlightOnAPreviousIncarnationCountsForItsWorker) {
  // Worker 1 ran as incarnation 0 when the request started, then crashed and was restarted
  // in place (same socket): the request is still in flight, on the same worker.
  control::SlotInfo old;
  old.app = "shop";
  old.slot = 1;
  old.generation = 0;
  old.path = "/tmp/none.1.sock";
  auto d = dispatchers_["shop"];
  d->update_slots({old});
  Lease lease;
  ASSERT_EQ(d->acquire(std::make_shared<HoldWaiter>(), lease), AppDispatcher::Outcome::Granted);
  ASSERT_EQ(lease.generation(), 0u);
  control::SlotInfo s0 = old, s1 = old;
  s0.slot = 0;
  s0.generation = 2;
  s0.path = "/tmp/none.0.sock";
  s1.generation = 1;
  d->update_slots({s0, s1});
  StatusInputs in;
  in.figures = &figures_;
  json j = build(in);
  const json& shop = j["apps"][1];
  EXPECT_EQ(shop["in_flight"], 1);
  EXPECT_EQ(shop["workers"][0]["in_flight"], 0) << shop.dump();
  EXPECT_EQ(shop["workers"][1]["in_flight"], 1) << shop.dump();
  EXPECT_EQ(shop["workers"][1]["requests"], 0) << "requests are the incarnation's: " << shop.dump();
  lease.release();
}

TEST_F(StatusJsonTest, SeriesSinceAndNoFiguresYet) {
  StatusInputs in;
  in.ready = false;
  in.not_ready = "no config";
  in.stopping = true;
  for (int64_t t : {1000, 2000, 3000}) {
    StatusSample s;
    s.t_ms = t;
    s.rate = static_cast<double>(t) / 100;
    s.errors = 1;
    s.p50 = 0.01;
    s.p90 = 0.05;
    s.p99 = 0.25;
    s.queued = 3;
    s.in_flight = 2;
    in.series["shop"].push_back(s);
  }
  in.series["unknown"].push_back(StatusSample{});
  json j = build(in, 1000);
  EXPECT_EQ(j["ready"], false);
  EXPECT_EQ(j["not_ready"], "no config");
  EXPECT_EQ(j["stopping"], true);
  EXPECT_TRUE(j["figures_age_ms"].is_null());
  EXPECT_FALSE(j["series"].contains("unknown")) << "only the configured apps";
  ASSERT_EQ(j["series"]["shop"].size(), 2u);
  EXPECT_EQ(j["series"]["shop"][0], json::parse(R"({"t": 2000, "rate": 20.0, "errors": 1.0, "p50": 0.01,
      "p90": 0.05, "p99": 0.25, "queued": 3, "in_flight": 2})"));
  EXPECT_EQ(j["series"]["shop"][1]["t"], 3000);
  EXPECT_EQ(build(in)["series"]["shop"].size(), 3u);
  // Without figures the workers are the dispatcher's: no pid, no process figures.
  const json& shop = j["apps"][1];
  ASSERT_EQ(shop["workers"].size(), 2u);
  EXPECT_EQ(shop["workers"][0]["state"], "ready");
  EXPECT_TRUE(shop["workers"][0]["rss"].is_null());
  EXPECT_EQ(shop["recent_deaths"], json::array());
}

TEST_F(StatusJsonTest, ClientBytesInDeathRecordsNeverBreakTheDocument) {
  figures_["apps"][0]["recent_deaths"][0]["in_flight_requests"] =
      json::array({{{"method", "GET"}, {"path", std::string("/caf\xe9\xff", 6)}}});
  StatusInputs in;
  in.figures = &figures_;
  json j = build(in);
  ASSERT_TRUE(j.is_object());
  EXPECT_TRUE(j["apps"][1]["recent_deaths"][0]["in_flight_requests"][0]["path"].is_string());
}

TEST(StatusSince, ReadsTheQuery) {
  EXPECT_EQ(status_since("/status.json"), 0);
  EXPECT_EQ(status_since("/status.json?since=1700000000000"), 1'700'000'000'000);
  EXPECT_EQ(status_since("/status.json?x=1&since=42"), 42);
  EXPECT_EQ(status_since("/status.json?since=42x"), 0);
  EXPECT_EQ(status_since("/status.json?since=-5"), 0);
  EXPECT_EQ(status_since("/status.json?since="), 0);
  EXPECT_EQ(status_since("/status.json?nosince=5"), 0);
}

std::string sha256_base64(std::string_view s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, d, sizeof d);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

// The element's content between <tag> and </tag> (the page has exactly one of each).
std::string_view block(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  const size_t a = page.find(open);
  const size_t b = page.find(close);
  if (a == std::string_view::npos || b == std::string_view::npos) return {};
  EXPECT_EQ(page.find(open, a + 1), std::string_view::npos) << "one <" << tag << "> only";
  return page.substr(a + open.size(), b - a - open.size());
}

TEST(StatusPage, SelfContainedWithAStrictPolicy) {
  const std::string_view page = status_page_html();
  ASSERT_GT(page.size(), 1000u);
  EXPECT_EQ(page.substr(0, 15), "<!DOCTYPE html>");
  // Nothing from elsewhere: no URLs, no external script, style sheet or image.
  for (const char* bad : {"http://", "https://", "<script src", "<link rel=\"stylesheet\"", "@import", "url("})
    EXPECT_EQ(page.find(bad), std::string_view::npos) << bad;
  // The data it shows comes from a relative URL, so the page works behind a path prefix.
  EXPECT_NE(page.find("\"status.json\""), std::string_view::npos);
  EXPECT_EQ(page.find("\"/status.json"), std::string_view::npos);
  const std::string csp(status_page_csp());
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  EXPECT_EQ(csp.rfind("default-src 'none'; ", 0), 0u) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  const std::string_view script = block(page, "script"), style = block(page, "style");
  ASSERT_FALSE(script.empty());
  ASSERT_FALSE(style.empty());
  EXPECT_NE(csp.find("script-src 'sha256-" + sha256_base64(script) + "';"), std::string::npos) << csp;
  EXPECT_NE(csp.find("style-src 'sha256-" + sha256_base64(style) + "';"), std::string::npos) << csp;
  // Style attributes would need 'unsafe-hashes': the page has none.
  EXPECT_EQ(page.find(" style=\""), std::string_view::npos);
}

}  // namespace
}  // namespace corral::proxy
