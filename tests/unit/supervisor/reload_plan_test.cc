#include "supervisor/reload_plan.h"

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

using Action = AppDiff::Action;

conf::App app(const std::string& name, conf::AppKind kind = conf::AppKind::Http) {
  conf::App a;
  a.name = name;
  a.kind = kind;
  a.command = {"/srv/" + name};
  a.workers = 2;
  a.env = {{"WHO", name}};
  return a;
}

conf::Config two_apps() {
  conf::Config c;
  c.supervisor.runtime_dir = "/run/corral";
  conf::Listener l;
  l.address = "127.0.0.1:8080";
  c.listeners = {l};
  c.routes = {{"", "/a/", "a"}, {"", "/", "b"}};
  c.apps = {app("a"), app("b")};
  return c;
}

TEST(ReloadPlan, NothingChanged) {
  auto plan = plan_reload(two_apps(), two_apps());
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(plan.describe(), std::vector<std::string>{"nothing changed"});
  ASSERT_EQ(plan.apps.size(), 2u);
  EXPECT_EQ(plan.apps[0].action, Action::Keep);
  EXPECT_EQ(plan.apps[1].action, Action::Keep);
}

// The case that crashed the supervisor: the second app (by name) gets a new generation.
TEST(ReloadPlan, EnvOfTheSecondAppMakesANewGenerationOfItAlone) {
  auto next = two_apps();
  next.apps[1].env = {{"WHO", "b2"}, {"EXTRA", "1"}};
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.app("a")->action, Action::Keep);
  ASSERT_EQ(plan.app("b")->action, Action::Replace);
  EXPECT_EQ(plan.app("b")->reasons, std::vector<std::string>{"env changed (EXTRA, WHO)"});
  EXPECT_EQ(plan.app("b")->env_keys, (std::vector<std::string>{"EXTRA", "WHO"}));
  EXPECT_EQ(plan.app("b")->stopped(), 2);
  EXPECT_EQ(plan.app("b")->started(), 2);
  EXPECT_EQ(plan.describe(), std::vector<std::string>{
                                 "app b: new generation (env changed (EXTRA, WHO)); replaces 2 workers with 2 workers"});
  EXPECT_EQ(plan.outcome(), ReloadPlan::Outcome::Reload);
}

// The plan shown by `corralctl plan` names the workers that go (the Arbiter fills them in).
TEST(ReloadPlan, TheWorkersThatGoAreNamed) {
  auto next = two_apps();
  next.apps[1].env = {{"WHO", "b2"}};
  next.apps[1].workers = 3;
  auto plan = plan_reload(two_apps(), next);
  AppDiff& b = plan.apps[1];
  ASSERT_EQ(b.action, Action::Replace);
  EXPECT_EQ(b.env_keys, std::vector<std::string>{"WHO"});
  EXPECT_EQ(b.workers_before, 2);
  EXPECT_EQ(b.workers_after, 3);
  b.running = {{3, 1201}, {4, 1202}};
  EXPECT_EQ(plan.describe(), std::vector<std::string>{"app b: new generation (env changed (WHO), workers 2 -> 3); "
                                                      "replaces workers 3 (pid 1201), 4 (pid 1202) with 3 workers"});
  b.running[1].pid = 0;  // backing off: no process now
  EXPECT_EQ(plan.describe()[0].substr(plan.describe()[0].find("replaces")), "replaces workers 3 (pid 1201), 4 (not running) with 3 workers");
  b.running[1].pid = 1202;
  auto j = plan.to_json();
  EXPECT_EQ(j["outcome"], "reload");
  EXPECT_EQ(j["apps"][1]["env_keys"], nlohmann::json::array({"WHO"}));
  EXPECT_EQ(j["apps"][1]["stopped"], 2);
  EXPECT_EQ(j["apps"][1]["started"], 3);
  EXPECT_EQ(j["apps"][1]["running"][1]["pid"], 1202);
  EXPECT_EQ(j["apps"][0]["stopped"], 0);
}

TEST(ReloadPlan, DurationsSayTheirValues) {
  auto next = two_apps();
  next.apps[0].queue_timeout = std::chrono::milliseconds(2'500);
  next.apps[0].graceful_timeout = std::chrono::minutes(1);
  next.supervisor.drain_delay = std::chrono::seconds(5);
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.app("a")->reasons, (std::vector<std::string>{"queue_timeout 10s -> 2500ms", "graceful_timeout 30s -> 1m"}));
  EXPECT_EQ(plan.supervisor, std::vector<std::string>{"supervisor.drain_delay 0s -> 5s"});
}

TEST(ReloadPlan, AScaleCountsTheWorkersStartedOrStopped) {
  auto next = two_apps();
  next.apps[0].workers = 5;
  next.apps[1].workers = 1;
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.app("a")->action, Action::Update);
  EXPECT_EQ(plan.app("a")->started(), 3);
  EXPECT_EQ(plan.app("a")->stopped(), 0);
  EXPECT_EQ(plan.app("b")->started(), 0);
  EXPECT_EQ(plan.app("b")->stopped(), 1);
  EXPECT_EQ(plan.describe(), (std::vector<std::string>{"app a: workers 2 -> 5", "app b: workers 2 -> 1"}));
}

TEST(ReloadPlan, SettingsTheRunningWorkersPickUpAreAnUpdate) {
  auto next = two_apps();
  next.apps[0].workers = 3;
  next.apps[0].health_path = "/a/";
  next.apps[0].concurrency = 4;  // http: the proxy applies it
  next.apps[0].queue_size = 10;
  auto plan = plan_reload(two_apps(), next);
  ASSERT_EQ(plan.app("a")->action, Action::Update);
  EXPECT_EQ(plan.app("a")->reasons,
            (std::vector<std::string>{"workers 2 -> 3", "concurrency 1 -> 4", "queue_size 1024 -> 10", "health_path changed"}));
}

TEST(ReloadPlan, ConcurrencyOfAHostedKindIsProcessLevel) {
  auto before = two_apps();
  before.apps[1] = app("b", conf::AppKind::Wsgi);
  auto next = before;
  next.apps[1].concurrency = 8;
  auto plan = plan_reload(before, next);
  ASSERT_EQ(plan.app("b")->action, Action::Replace);
  EXPECT_EQ(plan.app("b")->reasons, std::vector<std::string>{"concurrency (corral-worker's threads) changed"});
}

TEST(ReloadPlan, EveryFieldOfAnAppIsNoticed) {
  // Whatever changes in an app, the plan never says "keep" (a field a reason list forgot
  // still makes a new generation: "settings changed").
  std::vector<std::function<void(conf::App&)>> edits = {
      [](conf::App& a) { a.kind = conf::AppKind::Fastcgi; }, [](conf::App& a) { a.command.push_back("-v"); },
      [](conf::App& a) { a.root = "/srv"; },                   [](conf::App& a) { a.script_filename = "/x"; },
      [](conf::App& a) { a.module = "m:app"; },                [](conf::App& a) { a.python_path = {"/p"}; },
      [](conf::App& a) { a.virtualenv = "/v"; },               [](conf::App& a) { a.worker_class = "gthread"; },
      [](conf::App& a) { a.workers = 9; },                     [](conf::App& a) { a.workers_auto = true; },
      [](conf::App& a) { a.concurrency = 3; },                 [](conf::App& a) { a.timeout = Millis{1}; },
      [](conf::App& a) { a.queue_size = 1; },                  [](conf::App& a) { a.queue_timeout = Millis{1}; },
      [](conf::App& a) { a.cwd = "/tmp"; },                    [](conf::App& a) { a.env.clear(); },
      [](conf::App& a) { a.graceful_timeout = Millis{1}; },    [](conf::App& a) { a.kill_timeout = Millis{1}; },
      [](conf::App& a) { a.max_requests = 5; },                [](conf::App& a) { a.max_requests_jitter = 5; },
      [](conf::App& a) { a.max_rss = 5; },                     [](conf::App& a) { a.health_path = "/h"; },
      [](conf::App& a) { a.boot_timeout = Millis{1}; },        [](conf::App& a) { a.user = "nobody"; },
      [](conf::App& a) { a.group = "nogroup"; },               [](conf::App& a) { a.rlimits = {{"nofile", "10"}}; },
      [](conf::App& a) { a.umask = 022; },                     [](conf::App& a) { a.index = "start.php"; },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    auto next = two_apps();
    edits[i](next.apps[1]);
    ASSERT_FALSE(next.apps[1] == two_apps().apps[1]) << "edit " << i << " changed nothing";
    auto plan = plan_reload(two_apps(), next);
    EXPECT_NE(plan.app("b")->action, Action::Keep) << "edit " << i;
    EXPECT_FALSE(plan.app("b")->reasons.empty()) << "edit " << i;
    EXPECT_EQ(plan.app("a")->action, Action::Keep) << "edit " << i;
  }
}

TEST(ReloadPlan, TheIndexOfAFastcgiAppIsTheProxysBusiness) {
  auto before = two_apps();
  before.apps[0] = app("a", conf::AppKind::Fastcgi);
  before.apps[1] = app("b", conf::AppKind::Cgi);
  auto next = before;
  next.apps[0].index = next.apps[1].index = "default.php";
  auto plan = plan_reload(before, next);
  EXPECT_EQ(plan.app("a")->action, Action::Update);  // php-cgi keeps running
  EXPECT_EQ(plan.app("a")->reasons, std::vector<std::string>{"index changed"});
  EXPECT_EQ(plan.app("b")->action, Action::Replace);  // corral-worker has it on its command line
  EXPECT_EQ(plan.app("b")->reasons, std::vector<std::string>{"index changed"});
}

// Compression is the proxy's: a route whose compress settings change keeps every worker.
TEST(ReloadPlan, CompressChangesOnlyTheRoute) {
  auto next = two_apps();
  next.routes[1].compress = {"br", "gzip"};
  next.routes[1].gzip_level = 6;
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.app("a")->action, Action::Keep);
  EXPECT_EQ(plan.app("b")->action, Action::Keep);
  EXPECT_EQ(plan.routes, (std::vector<std::string>{
                             "route 2 (path / -> app b (compress br gzip)): compress off -> br,gzip, gzip_level 5 -> 6"}));
  auto off = plan_reload(next, two_apps());
  EXPECT_EQ(off.routes, (std::vector<std::string>{"route 2 (path / -> app b): compress br,gzip -> off, gzip_level 6 -> 5"}));
  EXPECT_FALSE(off.empty());
}

TEST(ReloadPlan, AddRemoveAndRename) {
  auto next = two_apps();
  next.apps = {app("a2"), app("b"), app("c")};  // a renamed to a2, c added
  next.routes = {{"", "/a/", "a2"}, {"", "/", "b"}, {"", "/c/", "c"}};
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.app("a")->action, Action::Remove);
  EXPECT_EQ(plan.app("a2")->action, Action::Add);
  EXPECT_EQ(plan.app("b")->action, Action::Keep);
  EXPECT_EQ(plan.app("c")->action, Action::Add);
  EXPECT_EQ(plan.routes, (std::vector<std::string>{"route 1: path /a/ -> app a => path /a/ -> app a2",
                                                   "route 3 added: path /c/ -> app c"}));
  auto lines = plan.describe();
  EXPECT_EQ(lines, (std::vector<std::string>{"app a: removed (draining; 2 workers stop)", "app a2: added (2 workers)",
                                             "app c: added (2 workers)",
                                             "route 1: path /a/ -> app a => path /a/ -> app a2",
                                             "route 3 added: path /c/ -> app c"}));
  auto j = plan.to_json();
  EXPECT_EQ(j["apps"][0]["action"], "remove");
  EXPECT_EQ(j["apps"][1]["name"], "a2");
}

TEST(ReloadPlan, Listeners) {
  auto next = two_apps();
  conf::Listener tls;
  tls.address = "127.0.0.1:8443";
  tls.tls = {{"/c.pem", "/k.pem", "C", "K"}};
  next.listeners.push_back(tls);
  auto plan = plan_reload(two_apps(), next);
  ASSERT_EQ(plan.listeners.size(), 2u);
  EXPECT_EQ(plan.listeners[0].action, ListenerDiff::Action::Keep);
  EXPECT_EQ(plan.listeners[1].action, ListenerDiff::Action::Add);

  auto renewed = next;
  renewed.listeners[1].tls[0].cert_pem = "C2";  // a renewed certificate, same paths
  renewed.listeners.erase(renewed.listeners.begin());
  plan = plan_reload(next, renewed);
  ASSERT_EQ(plan.listeners.size(), 2u);
  EXPECT_EQ(plan.listeners[0].action, ListenerDiff::Action::Update);
  EXPECT_EQ(plan.listeners[0].reasons, std::vector<std::string>{"tls certificate /c.pem contents changed"});
  EXPECT_EQ(plan.listeners[1].action, ListenerDiff::Action::Remove);
  EXPECT_EQ(plan.listeners[1].address, "127.0.0.1:8080");
  EXPECT_EQ(plan.describe(), (std::vector<std::string>{"listener 127.0.0.1:8443: tls certificate /c.pem contents changed",
                                                       "listener 127.0.0.1:8080: removed"}));
  EXPECT_EQ(plan.outcome(), ReloadPlan::Outcome::Reload);
}

TEST(ReloadPlan, TlsChangesSayWhichFile) {
  auto running = two_apps();
  running.listeners[0].tls = {{"/a.pem", "/a.key", "A", "AK"}, {"/b.pem", "/b.key", "B", "BK"}};
  auto next = running;
  next.listeners[0].tls[0].key_pem = "AK2";                         // a new key in the same file
  next.listeners[0].tls[1].cert = "/b2.pem";                        // another file
  next.listeners[0].tls.push_back({"/c.pem", "/c.key", "C", "CK"});  // one more (SNI)
  auto plan = plan_reload(running, next);
  ASSERT_EQ(plan.listeners[0].action, ListenerDiff::Action::Update);
  EXPECT_EQ(plan.listeners[0].reasons, (std::vector<std::string>{"tls key /a.key contents changed",
                                                                  "tls certificate /b.pem -> /b2.pem",
                                                                  "tls certificate added (/c.pem)"}));
  next = running;
  next.listeners[0].tls.pop_back();
  EXPECT_EQ(plan_reload(running, next).listeners[0].reasons,
            std::vector<std::string>{"tls certificate removed (/b.pem)"});
  next.listeners[0].tls.clear();
  EXPECT_EQ(plan_reload(running, next).listeners[0].reasons, std::vector<std::string>{"tls removed (plaintext now)"});
}

TEST(ReloadPlan, WhatAReloadCannotDo) {
  auto next = two_apps();
  next.supervisor.runtime_dir = "/elsewhere";
  EXPECT_NE(plan_reload(two_apps(), next).refused, "");
  EXPECT_EQ(plan_reload(two_apps(), next).outcome(), ReloadPlan::Outcome::Refused);
  EXPECT_EQ(plan_reload(two_apps(), next).to_json()["outcome"], "refused");
  next = two_apps();
  next.supervisor.user = "corral";
  next.proxy.threads = 3;
  next.proxy.max_body_size = 1;
  next.supervisor.log_level = log::Level::Debug;
  auto plan = plan_reload(two_apps(), next);
  EXPECT_EQ(plan.refused, "");
  EXPECT_EQ(plan.on_restart,
            (std::vector<std::string>{"supervisor.user (none) -> corral: applies when corral restarts",
                                      "proxy.threads auto -> 3: applies when the proxy restarts (corralctl restart-proxy) "
                                      "or corral restarts"}));
  EXPECT_EQ(plan.describe().back(), plan.on_restart.back());
  EXPECT_EQ(plan.proxy, std::vector<std::string>{"proxy.max_body_size changed"});
  EXPECT_EQ(plan.supervisor, std::vector<std::string>{"supervisor.log_level changed"});
  EXPECT_EQ(plan.outcome(), ReloadPlan::Outcome::Restart);
  EXPECT_EQ(plan_reload(two_apps(), two_apps()).outcome(), ReloadPlan::Outcome::Nothing);
  EXPECT_STREQ(outcome_name(ReloadPlan::Outcome::Restart), "restart");
}

}  // namespace
}  // namespace corral::supervisor
