// The admin listener's /status page in a real browser (headless Chromium over the DevTools
// pipe): it renders both apps with no console error, no uncaught exception and no CSP
// violation; its charts move under load; a worker killed with SIGKILL shows up in its
// death records. Screenshots of the three moments are kept under
// <build>/tests/integration/artifacts/57_status_page/ (paths printed). Skipped when no
// Chromium is installed (packaging/install-deps.sh installs it; label "chromium").
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "tests/integration/harness/chromium.h"
#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

std::string artifacts_dir() {
  std::string dir = std::string(CORRAL_ARTIFACTS_DIR) + "/57_status_page";
  ::mkdir(CORRAL_ARTIFACTS_DIR, 0755);
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

class StatusPageTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (Chromium::find_binary().empty()) GTEST_SKIP() << "no chromium (packaging/install-deps.sh test installs it)";
    config_.proxy("admin", quote("127.0.0.1:0"));
    config_.app("web").workers(2).concurrency(2);
    AppSpec& hello = config_.app("hello");
    hello.kind = "fastcgi";
    hello.command = {bin_path("corral-fcgi-hello")};
    hello.workers(1);
    config_.route("hello", "/hello");
    config_.route("web", "/");
    // The killed worker's death line.
    allowed_errors_ = {"exited: reason=signal"};
  }

  // What chart `key` of `app` plots, from its canvas's data attributes: {points (samples),
  // peak (of its first line), last (latest value of each line)}; null when there is none.
  nlohmann::json chart(const std::string& app, const std::string& key) {
    return browser_.evaluate("(() => { const c = document.querySelector('canvas[data-app=\"" + app +
                             "\"][data-chart=\"" + key + "\"]'); return c ? {points: +c.dataset.points, "
                             "peak: +c.dataset.peak, last: JSON.parse(c.dataset.last || '{}')} : null; })()");
  }

  void shoot(const std::string& name) {
    const std::string path = artifacts_dir() + "/" + name;
    std::string error;
    EXPECT_TRUE(browser_.screenshot(path, &error)) << error;
    std::printf("[ artifact ] %s\n", path.c_str());
    RecordProperty(name, path);
  }

  void TearDown() override {
    for (auto& e : browser_.errors()) ADD_FAILURE() << "browser: " << e;
    if (HasFailure())
      for (auto& m : browser_.messages()) std::fprintf(stderr, "browser message: %s\n", m.c_str());
    browser_.stop();
    IntegrationTest::TearDown();
  }

  Chromium browser_;
};

TEST_F(StatusPageTest, RendersMovesUnderLoadAndShowsADeath) {
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  ASSERT_GT(admin, 0) << corral_->status().dump();
  const std::string base = "http://127.0.0.1:" + std::to_string(admin);

  // What the browser is given: HTML with a strict policy, and the JSON it polls.
  HttpResponse page = curl({base + "/status"});
  ASSERT_EQ(page.status, 200) << page.error;
  EXPECT_EQ(page.header("Content-Type"), "text/html; charset=utf-8");
  const std::string csp = page.header("Content-Security-Policy");
  EXPECT_EQ(csp.rfind("default-src 'none';", 0), 0u) << csp;
  EXPECT_EQ(csp.find("unsafe"), std::string::npos) << csp;
  HttpResponse js = curl({base + "/status.json"});
  ASSERT_EQ(js.status, 200) << js.error;
  nlohmann::json doc = nlohmann::json::parse(js.body, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << js.body;
  ASSERT_EQ(doc["apps"].size(), 2u) << js.body;

  std::string error;
  // The profile and the browser log live in the test's temp dir (kept when the test fails).
  ASSERT_TRUE(browser_.start(rt_.path(), 1280, 1400, &error)) << error;
  ASSERT_TRUE(browser_.open(base + "/status", &error)) << error;
  // Both apps, their kinds and workers, and the routes, once the first poll has answered.
  ASSERT_TRUE(browser_.wait_for("document.body.dataset.updates >= 1 && "
                                "document.querySelectorAll('#apps tbody tr').length == 2 && "
                                "document.querySelectorAll('section.app[data-app=\"web\"] .workers tbody tr').length == 2",
                                10s))
      << browser_.evaluate("document.body.innerText").dump();
  EXPECT_EQ(browser_.evaluate("document.body.dataset.connected"), "1");
  EXPECT_EQ(browser_.evaluate("document.querySelector('#ready').dataset.ready"), "1");
  EXPECT_EQ(browser_.evaluate("Array.from(document.querySelectorAll('#apps tbody tr')).map(r => "
                              "r.dataset.app + ':' + r.children[1].textContent).join(' ')"),
            "hello:fastcgi web:http");
  EXPECT_EQ(browser_.evaluate("Array.from(document.querySelectorAll('#routes tbody tr')).map(r => "
                              "r.children[1].textContent + '=' + r.children[2].textContent).join(' ')"),
            "/hello=hello /=web");
  EXPECT_EQ(browser_.evaluate("document.querySelectorAll('canvas').length"), 6);
  shoot("1-idle.png");
  const nlohmann::json idle = chart("web", "rate");
  ASSERT_TRUE(idle.is_object());

  // Load on both apps; the charts must show it within a few seconds.
  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int i = 0; i < 4; ++i)
    load.emplace_back([&, i] {
      while (!done) {
        HttpResponse r = http_get(port(), i == 3 ? "/hello" : "/sleep?ms=20");
        (r.status == 200 ? ok : failed)++;
      }
    });
  const auto load_start = std::chrono::steady_clock::now();
  const bool moved = browser_.wait_for(
      "(() => { const c = document.querySelector('canvas[data-app=\"web\"][data-chart=\"rate\"]'); "
      "const h = document.querySelector('canvas[data-app=\"hello\"][data-chart=\"rate\"]'); "
      "const l = document.querySelector('canvas[data-app=\"web\"][data-chart=\"latency\"]'); "
      "return JSON.parse(c.dataset.last).rate > 5 && JSON.parse(h.dataset.last).rate > 0 && "
      "JSON.parse(l.dataset.last).p50 >= 0.015; })()",
      10s);
  // A few seconds of load, so the screenshot shows a stretch of it.
  while (moved && std::chrono::steady_clock::now() - load_start < 5s)
    (void)browser_.wait_for("false", 200ms);
  const nlohmann::json busy = chart("web", "rate");
  shoot("2-load.png");
  done = true;
  for (auto& t : load) t.join();
  EXPECT_TRUE(moved) << "idle " << idle.dump() << " → under load " << busy.dump() << "; latency "
                     << chart("web", "latency").dump() << "; hello " << chart("hello", "rate").dump();
  EXPECT_GT(busy.value("points", 0), idle.value("points", 0)) << idle.dump() << " → " << busy.dump();
  EXPECT_GT(ok.load(), 20);
  EXPECT_EQ(failed.load(), 0);

  // A worker killed with SIGKILL while it serves a slow request: its death record,
  // unexpected, reason signal, naming the request.
  HttpResponse slow;
  std::thread client([&] { slow = http_get(port(), "/sleep?ms=4000"); });
  pid_t victim = 0;
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        for (auto& a : s["apps"])
          if (a.value("name", "") == "web")
            for (auto& w : a["workers"])
              if (w.value("in_flight", 0) > 0) victim = w.value("pid", 0);
        return victim > 0;
      },
      3s))
      << corral_->status().dump();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  client.join();  // 502, or 200 from the other worker when the proxy resent it (a kept connection broke)
  const std::string row = "#deaths tr[data-pid=\"" + std::to_string(victim) + "\"]";
  EXPECT_TRUE(browser_.wait_for("!!document.querySelector('" + row + "')", 10s))
      << browser_.evaluate("document.querySelector('#deaths').innerText").dump();
  EXPECT_EQ(browser_.evaluate("document.querySelector('" + row + "').dataset.reason"), "signal");
  EXPECT_EQ(browser_.evaluate("document.querySelector('" + row + "').dataset.app"), "web");
  EXPECT_EQ(browser_.evaluate("document.querySelector('" + row + "').className"), "unexpected");
  EXPECT_EQ(browser_.evaluate("document.querySelector('" + row + "').children[6].textContent"),
            "killed by signal 9 (SIGKILL)");
  // Once the proxy answered which request it was serving (the record is completed then).
  EXPECT_TRUE(browser_.wait_for("document.querySelector('" + row + "').children[9].textContent"
                                ".startsWith('GET /sleep?ms=4000 ')",
                                5s))
      << browser_.evaluate("document.querySelector('" + row + "').children[9].textContent").dump();
  // The replacement shows up in the worker table.
  EXPECT_TRUE(browser_.wait_for("document.querySelectorAll('section.app[data-app=\"web\"] "
                                ".workers tbody tr[data-state=\"ready\"]').length == 2 && "
                                "!document.querySelector('section.app[data-app=\"web\"] .workers tr[data-pid=\"" +
                                    std::to_string(victim) + "\"]')",
                                10s));
  shoot("3-death.png");
  EXPECT_EQ(browser_.evaluate("document.body.dataset.connected"), "1");
}

}  // namespace
}  // namespace corral::itest
