// `corralctl plan` and `corralctl reload --plan-id`, end to end: a config with an app of every
// kind (http: corral-testapp; cgi: a shell script; fastcgi: php-cgi; wsgi: a WSGI callable)
// and two listeners (plaintext, TLS). Each candidate is planned against the running
// supervisor and the plan's lines, JSON and exit code are checked (0 nothing, 1 invalid,
// 3 a reload applies it, 4 needs a restart or refused); then a planned change is applied
// with its id under load (the workers the plan named are the ones replaced, every other
// worker keeps its pid, no request fails), and stale ids are refused with nothing changed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/load.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kApps = CORRAL_SOURCE_DIR "/tests/apps";

// What the candidates vary; the defaults are the config corral starts with.
struct Spec {
  int api_workers = 1;
  std::string cgi_greeting;     // "" = no GREETING in cgi's env
  bool extra_app = false;       // an http app "extra" (route /extra/)
  bool py = true;               // the wsgi app "py"
  bool third_listener = false;  // 127.0.0.3:0, plaintext
  bool alias_route = false;     // /alias/ -> api, first
  int proxy_threads = 0;        // 0 = unset
  std::string runtime_dir;      // "" = the test's
  std::string raw;              // appended to [app.api] (invalid keys)
};

// Sequential GETs on a few paths from three threads, a new connection each (HTTP/1.1 in
// plaintext), and one curl after another over HTTP/2 with TLS on `tls_port`; anything but a
// 200 is a failure.
class Load {
 public:
  Load(int port, int tls_port, const std::vector<std::string>& paths)
      : h1_(port, any_body(paths), 3, Http1Load::Connections::kNewEach, 10ms), paths_(paths) {
    h2_ = std::thread([this, tls_port] { run_h2(tls_port); });
  }
  ~Load() { stop(); }
  void stop() {
    h1_.stop();
    stop_ = true;
    if (h2_.joinable()) h2_.join();
  }
  int ok() const { return h1_.ok() + h2_ok_; }
  int failed() const { return h1_.failed() + h2_failed_; }
  int h2_ok() const { return h2_ok_; }
  std::string failures() {
    std::lock_guard<std::mutex> g(mu_);
    return h1_.failures() + h2_failures_;
  }

 private:
  static Http1Load::Expect any_body(const std::vector<std::string>& paths) {
    Http1Load::Expect e;
    for (auto& p : paths) e[p] = {};
    return e;
  }

  void run_h2(int tls_port) {
    for (size_t n = 0; !stop_; ++n) {
      const std::string& path = paths_[n % paths_.size()];
      HttpResponse r = curl({"--http2", "-k", "https://127.0.0.2:" + std::to_string(tls_port) + path}, 10s);
      if (r.status == 200) {
        ++h2_ok_;
      } else {
        ++h2_failed_;
        std::lock_guard<std::mutex> g(mu_);
        if (h2_failures_.size() < 2000) h2_failures_ += " [h2 " + path + ": status " + std::to_string(r.status) + " " + r.error + "]";
      }
    }
  }

  Http1Load h1_;
  std::vector<std::string> paths_;
  std::atomic<bool> stop_{false};
  std::atomic<int> h2_ok_{0}, h2_failed_{0};
  std::mutex mu_;
  std::string h2_failures_;
  std::thread h2_;
};

class PlanTest : public IntegrationTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(make_cert("a", "cert-a")); }

  std::string render(const Spec& s) const {
    const std::string dir = s.runtime_dir.empty() ? rt_.path() + "/r" : s.runtime_dir;
    std::string t = "[supervisor]\nruntime_dir = " + quote(dir) +
                    "\nlog_level = \"info\"\ngraceful_timeout = \"5s\"\n\n[proxy]\naccess_log = \"off\"\n";
    if (s.proxy_threads) t += "threads = " + std::to_string(s.proxy_threads) + "\n";
    t += "\n[[listener]]\naddress = \"127.0.0.1:0\"\n";
    t += "\n[[listener]]\naddress = \"127.0.0.2:0\"\ntls = { cert = \"a.pem\", key = \"a.key\" }\n";
    if (s.third_listener) t += "\n[[listener]]\naddress = \"127.0.0.3:0\"\n";
    std::vector<std::string> apps = {"api", "cgi", "php"};
    if (s.py) apps.push_back("py");
    if (s.extra_app) apps.push_back("extra");
    if (s.alias_route) t += "\n[[route]]\npath = \"/alias/\"\napp = \"api\"\n";
    for (auto& a : apps) t += "\n[[route]]\npath = " + quote("/" + a + "/") + "\napp = " + quote(a) + "\n";
    for (auto& a : apps) {
      const std::string kind = a == "cgi" ? "cgi" : a == "php" ? "fastcgi" : a == "py" ? "wsgi" : "http";
      t += "\n[app." + a + "]\nkind = " + quote(kind) + "\n";
      t += "workers = " + std::to_string(a == "api" ? s.api_workers : 1) + "\n";
      t += "boot_timeout = \"20s\"\ngraceful_timeout = \"5s\"\n";
      if (kind == "http") t += "command = [" + quote(bin_path("corral-testapp")) + "]\n";
      if (kind == "fastcgi") t += "command = [\"/usr/bin/php-cgi\"]\nroot = " + quote(kApps + "/php") + "\n";
      if (kind == "cgi") t += "root = " + quote(kApps + "/cgi") + "\n";
      if (kind == "wsgi") t += "module = \"whoami_app:app\"\npython_path = [" + quote(kApps + "/wsgi_whoami") + "]\n";
      std::string env = "WHOAMI = " + quote(a) + ", CORRAL_ITEST_RUN = " + quote(rt_.path());
      if (kind == "fastcgi") env += ", PHP_FCGI_MAX_REQUESTS = \"0\"";
      if (a == "cgi" && !s.cgi_greeting.empty()) env += ", GREETING = " + quote(s.cgi_greeting);
      t += "env = { " + env + " }\n";
      if (a == "api") t += s.raw;
    }
    return t;
  }

  void start_with(const Spec& s) {
    cfg_ = rt_.write_file("corral.toml", render(s));
    corral_ = std::make_unique<CorralProcess>(rt_, cfg_);
    std::string error;
    ASSERT_TRUE(corral_->start(30s, &error)) << error;
    port_ = corral_->port(0);
    ASSERT_GT(port_, 0);
  }

  // `corralctl plan` of `s` written to `name` in the test's folder (next to corral.toml, so
  // relative paths mean the same); `name` empty: no -c, the running config's own file.
  ProcessResult plan(const std::string& name, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args;
    if (!name.empty()) args = {"-c", rt_.path() + "/" + name};
    args.push_back("plan");
    args.insert(args.end(), extra.begin(), extra.end());
    return ctl(args);
  }
  ProcessResult plan_spec(const std::string& name, const Spec& s, const std::vector<std::string>& extra = {}) {
    rt_.write_file(name, render(s));
    return plan(name, extra);
  }
  nlohmann::json plan_json(const std::string& name, const Spec& s, int* exit_code) {
    ProcessResult r = plan_spec(name, s, {"--json"});
    *exit_code = r.exit_code;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  // app -> {worker id -> pid}
  std::map<std::string, std::map<int, int>> workers() {
    std::map<std::string, std::map<int, int>> out;
    nlohmann::json st = corral_->status();
    for (auto& a : st["apps"])
      for (auto& w : a["workers"]) out[a.value("name", "")][w.value("id", 0)] = w.value("pid", 0);
    return out;
  }
  uint64_t generation() { return corral_->status().value("config_generation", 0ull); }

  // Every line of a human plan starts with what it is about.
  static void expect_readable(const std::string& out) {
    std::istringstream in(out);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      if (n++ == 0) {
        EXPECT_EQ(line.rfind("plan g", 0), 0u) << "header: " << line;
        continue;
      }
      bool known = false;
      for (const char* p : {"app ", "listener ", "route ", "proxy", "supervisor", "note: ", "=> ", "refused: ",
                            "nothing changed"})
        known = known || line.rfind(p, 0) == 0;
      EXPECT_TRUE(known) << "a plan line that names nothing first: " << line;
    }
    EXPECT_GE(n, 3) << out;
  }

  static std::string line_starting(const std::string& out, const std::string& prefix) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(prefix, 0) == 0) return line;
    return "";
  }

  std::string cfg_;
  int port_ = 0;
};

TEST_F(PlanTest, EachKindOfChangeIsPlannedWithItsExitCode) {
  ASSERT_NO_FATAL_FAILURE(start_with(Spec{}));
  auto before = workers();
  ASSERT_EQ(before.size(), 4u);
  const uint64_t gen = generation();

  // No change: the running config's own file (no -c) and an identical candidate.
  ProcessResult r = plan("");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\nnothing changed\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("=> a reload changes nothing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(cfg_ + " against the running config (generation " + std::to_string(gen) + ")"),
            std::string::npos) << r.out;
  expect_readable(r.out);
  r = plan_spec("same.toml", Spec{});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // Without --socket, -c FILE is also where control.sock is found (FILE's runtime_dir).
  r = run_process({bin_path("corralctl"), "-c", rt_.path() + "/same.toml", "plan"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\nnothing changed\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("note: a reload reads " + cfg_), std::string::npos) << r.out;

  // The env of the second app: a new generation of it alone, naming the key (not the value)
  // and the worker that goes.
  Spec env;
  env.cgi_greeting = "s3cret-value";
  r = plan_spec("env.toml", env);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  const int cgi_id = before["cgi"].begin()->first, cgi_pid = before["cgi"].begin()->second;
  EXPECT_EQ(line_starting(r.out, "app "),
            "app cgi: new generation (env changed (GREETING)); replaces worker " + std::to_string(cgi_id) + " (pid " +
                std::to_string(cgi_pid) + ") with 1 worker")
      << r.out;
  EXPECT_EQ(r.out.find("s3cret"), std::string::npos) << "values stay out of the plan: " << r.out;
  EXPECT_NE(r.out.find("=> a reload applies all of it: corralctl reload --plan-id g"), std::string::npos) << r.out;
  expect_readable(r.out);
  int code = 0;
  nlohmann::json j = plan_json("env.toml", env, &code);
  EXPECT_EQ(code, 3);
  ASSERT_TRUE(j.is_object()) << j;
  EXPECT_EQ(j["outcome"], "reload");
  for (auto& a : j["plan"]["apps"]) {
    if (a["name"] == "cgi") {
      EXPECT_EQ(a["action"], "replace");
      EXPECT_EQ(a["env_keys"], nlohmann::json::array({"GREETING"}));
      EXPECT_EQ(a["stopped"], 1);
      EXPECT_EQ(a["running"][0]["pid"], cgi_pid);
    } else {
      EXPECT_EQ(a["action"], "keep") << a;
    }
  }

  // The worker count: an update in place, nothing replaced.
  Spec more;
  more.api_workers = 2;
  r = plan_spec("more.toml", more);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(line_starting(r.out, "app "), "app api: workers 1 -> 2") << r.out;
  j = plan_json("more.toml", more, &code);
  EXPECT_EQ(j["plan"]["apps"][0]["action"], "update");
  EXPECT_EQ(j["plan"]["apps"][0]["started"], 1);

  // An app added, another removed.
  Spec swap;
  swap.extra_app = true;
  swap.py = false;
  r = plan_spec("swap.toml", swap);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("\napp extra: added (1 worker)\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\napp py: removed (draining; worker " + std::to_string(before["py"].begin()->first) + " (pid " +
                       std::to_string(before["py"].begin()->second) + ") stop)\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nroute 4: path /py/ -> app py => path /extra/ -> app extra\n"), std::string::npos) << r.out;
  expect_readable(r.out);
  std::printf("[plan] corralctl -c swap.toml plan (exit %d):\n%s", r.exit_code, r.out.c_str());

  // A listener added.
  Spec third;
  third.third_listener = true;
  r = plan_spec("third.toml", third);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("\nlistener 127.0.0.3:0: added\n"), std::string::npos) << r.out;

  // A route.
  Spec alias;
  alias.alias_route = true;
  r = plan_spec("alias.toml", alias);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("\nroute 1: path /api/ -> app api => path /alias/ -> app api\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nroute 5 added: path /py/ -> app py\n"), std::string::npos) << r.out;

  // The TLS certificate renewed in place (same file names, other contents): the listener is
  // updated. Planned on the running config's own file, which did not change.
  const std::string pem = rt_.path() + "/a.pem", key = rt_.path() + "/a.key";
  ASSERT_EQ(run_process({"cp", pem, pem + ".orig"}, 10s).exit_code, 0);
  ASSERT_EQ(run_process({"cp", key, key + ".orig"}, 10s).exit_code, 0);
  ASSERT_NO_FATAL_FAILURE(make_cert("a", "cert-a-renewed"));
  r = plan("");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(line_starting(r.out, "listener "),
            "listener 127.0.0.2:0: tls certificate " + pem + " contents changed, tls key " + key + " contents changed")
      << r.out;
  ASSERT_EQ(run_process({"cp", pem + ".orig", pem}, 10s).exit_code, 0);
  ASSERT_EQ(run_process({"cp", key + ".orig", key}, 10s).exit_code, 0);
  r = plan("");
  EXPECT_EQ(r.exit_code, 0) << "the same bytes again: " << r.out << r.err;

  // What a reload cannot apply: proxy.threads waits for a restart (the rest is reloaded);
  // another runtime_dir is refused.
  Spec threads;
  threads.proxy_threads = 3;
  threads.api_workers = 2;
  r = plan_spec("threads.toml", threads);
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("\nproxy.threads auto -> 3: applies when the proxy restarts (corralctl restart-proxy) or corral "
                       "restarts\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\napp api: workers 1 -> 2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("=> some changes need a restart"), std::string::npos) << r.out;
  expect_readable(r.out);
  std::printf("[plan] corralctl -c threads.toml plan (exit %d):\n%s", r.exit_code, r.out.c_str());
  Spec moved;  // (also: --socket wins over the candidate's runtime_dir, which has no socket)
  moved.runtime_dir = rt_.path() + "/elsewhere";
  r = plan_spec("moved.toml", moved);
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("\nrefused: supervisor.runtime_dir cannot change on reload"), std::string::npos) << r.out;
  j = plan_json("moved.toml", moved, &code);
  EXPECT_EQ(j["outcome"], "refused");

  // An invalid candidate: the same file:line:key errors as `corralctl check`, exit 1.
  Spec bad;
  bad.raw = "wokers = 2\n";
  r = plan_spec("bad.toml", bad);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  ProcessResult check = run_process({bin_path("corralctl"), "check", rt_.path() + "/bad.toml"}, 30s);
  ASSERT_EQ(check.exit_code, 1) << check.err;
  ASSERT_NE(check.err.find("bad.toml:"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("app.api"), std::string::npos) << check.err;
  EXPECT_EQ(r.err.rfind(check.err, 0), 0u) << "plan:\n" << r.err << "check:\n" << check.err;
  EXPECT_EQ(r.out, "");
  std::printf("[plan] corralctl -c bad.toml plan (exit %d), stderr:\n%s", r.exit_code, r.err.c_str());

  // Usage and reachability: 2 and 1, as every corralctl command.
  r = ctl({"plan", "extra"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  r = run_process({bin_path("corralctl"), "--socket", rt_.path() + "/none.sock", "plan"}, 30s);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no supervisor socket at " + rt_.path() + "/none.sock"), std::string::npos) << r.err;

  // What a plan costs (corralctl started, the candidate loaded and checked, planned): a figure,
  // not a limit.
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r = plan("");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  std::sort(ms.begin(), ms.end());
  std::printf("[plan] corralctl plan, 4 apps and 2 listeners: median %.1f ms, worst %.1f ms of 5\n", ms[2], ms[4]);

  // Planning changed nothing.
  EXPECT_EQ(workers(), before);
  EXPECT_EQ(generation(), gen);
}

TEST_F(PlanTest, ReloadWithAPlanIdAppliesExactlyThePlanOrNothing) {
  ASSERT_NO_FATAL_FAILURE(start_with(Spec{}));
  auto before = workers();
  ASSERT_EQ(before.size(), 4u);
  const uint64_t gen = generation();

  // The change: cgi's env (replace), api's workers (update), the certificate renewed
  // (listener update); written to the running config's file and planned there.
  Spec next;
  next.cgi_greeting = "hello";
  next.api_workers = 2;
  rt_.write_file("corral.toml", render(next));
  ASSERT_NO_FATAL_FAILURE(make_cert("a", "cert-a-renewed"));
  int code = 0;
  ProcessResult r = plan("", {"--json"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  const std::string id = j.value("plan_id", "");
  ASSERT_EQ(id.rfind("g" + std::to_string(gen) + "-", 0), 0u) << id;
  std::set<int> named;
  for (auto& a : j["plan"]["apps"])
    for (auto& w : a["running"]) named.insert(w.value("pid", 0));
  EXPECT_EQ(named, std::set<int>{before["cgi"].begin()->second}) << j.dump();

  // Planning the same thing again gives the same id.
  r = plan("", {"--json"});
  EXPECT_EQ(nlohmann::json::parse(r.out, nullptr, false).value("plan_id", ""), id) << r.out;

  // The file edited again since the plan: refused, nothing changed.
  Spec edited = next;
  edited.cgi_greeting = "hello again";
  rt_.write_file("corral.toml", render(edited));
  r = ctl({"reload", "--plan-id", id});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("the config or the running state changed since plan " + id + "; plan again"), std::string::npos)
      << r.err;
  EXPECT_EQ(workers(), before);
  EXPECT_EQ(generation(), gen);

  // Back to the planned bytes: the id matches again, and the reload applies it under load.
  rt_.write_file("corral.toml", render(next));
  const int tls_port = corral_->port(1);
  ASSERT_GT(tls_port, 0);
  Load load(port_, tls_port, {"/api/whoami", "/cgi/whoami.sh", "/php/whoami.php", "/py/whoami"});
  std::this_thread::sleep_for(300ms);
  r = ctl({"reload", "--plan-id", id});
  std::this_thread::sleep_for(300ms);
  load.stop();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("app cgi: new generation (env changed (GREETING))"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("app api: workers 1 -> 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("listener 127.0.0.2:0: tls certificate"), std::string::npos) << r.out;
  std::printf("[plan] reload --plan-id under load: %d requests (%d over h2+TLS), %d failed\n", load.ok(), load.h2_ok(),
              load.failed());
  EXPECT_GT(load.ok(), 0);
  EXPECT_GT(load.h2_ok(), 0);
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_EQ(generation(), gen + 1);

  // The named worker went; every other worker kept its pid; api got one more.
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& st) {
        for (auto& a : st["apps"])
          if (a.value("name", "") == "cgi")
            for (auto& w : a["workers"])
              if (w.value("pid", 0) == before["cgi"].begin()->second) return false;
        return true;
      },
      15s));
  auto after = workers();
  EXPECT_EQ(after["php"], before["php"]);
  EXPECT_EQ(after["py"], before["py"]);
  ASSERT_EQ(after["api"].size(), 2u);
  EXPECT_EQ(after["api"].count(before["api"].begin()->first), 1u);
  EXPECT_EQ(after["api"][before["api"].begin()->first], before["api"].begin()->second);
  ASSERT_EQ(after["cgi"].size(), 1u);
  EXPECT_NE(after["cgi"].begin()->second, before["cgi"].begin()->second);
  // The renewed certificate is the one served.
  ProcessResult s = run_process({"sh", "-c", "openssl s_client -connect 127.0.0.2:" + std::to_string(tls_port) +
                                                 " -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -subject"},
                                20s);
  EXPECT_NE(s.out.find("cert-a-renewed"), std::string::npos) << s.out << s.err;

  // A plan made, then another reload bumps the generation: the plan is refused.
  Spec third = next;
  third.api_workers = 3;
  rt_.write_file("corral.toml", render(third));
  r = plan("", {"--json"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  const std::string id2 = nlohmann::json::parse(r.out, nullptr, false).value("plan_id", "");
  ASSERT_FALSE(id2.empty());
  r = ctl({"reload"});  // plain reload, as systemd's ExecReload: applies the file
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto settled = workers();
  r = ctl({"reload", "--plan-id", id2});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("changed since plan " + id2), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("generation " + std::to_string(gen + 2) + " now, the plan was made at " + std::to_string(gen + 1)),
            std::string::npos)
      << r.err;
  EXPECT_EQ(generation(), gen + 2);
  EXPECT_EQ(workers(), settled);

  // A plan of another file is applied only once that file is the running one.
  Spec elsewhere = third;
  elsewhere.cgi_greeting = "from elsewhere";
  rt_.write_file("candidate.toml", render(elsewhere));
  r = plan("candidate.toml", {"--json"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  const std::string id3 = nlohmann::json::parse(r.out, nullptr, false).value("plan_id", "");
  r = ctl({"reload", "--plan-id", id3});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("it was made for " + rt_.path() + "/candidate.toml"), std::string::npos) << r.err;
  rt_.write_file("corral.toml", render(elsewhere));  // put into place, same bytes
  r = ctl({"reload", "--plan-id", id3});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("app cgi: new generation (env changed (GREETING))"), std::string::npos) << r.out;

  // A value set at run time since the plan (corralctl scale) is a change of the running
  // state: refused. Planned again, the plan says what the file does to that value.
  Spec five = elsewhere;
  five.api_workers = 5;
  rt_.write_file("corral.toml", render(five));
  r = plan("", {"--json"});
  ASSERT_EQ(r.exit_code, 3) << r.out << r.err;
  const std::string id4 = nlohmann::json::parse(r.out, nullptr, false).value("plan_id", "");
  r = ctl({"scale", "api", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ctl({"reload", "--plan-id", id4});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.err.find("changed since plan " + id4), std::string::npos) << r.err;
  r = plan("");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("\napp api: workers 4 -> 5\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nnote: app api: the file changes workers (3 -> 5): it replaces the value set at run time (4)\n"),
            std::string::npos)
      << r.out;
  expect_readable(r.out);

  // Bad ids are usage-level errors of the request, not a reload.
  r = ctl({"reload", "--plan-id", "nonsense"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("plan_id must be an id printed by corralctl plan"), std::string::npos) << r.err;
  r = ctl({"reload", "--plan-id"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  (void)code;
}

}  // namespace
}  // namespace corral::itest
