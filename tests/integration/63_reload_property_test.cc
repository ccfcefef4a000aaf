// Reload as a property: a config with several apps of every kind (http: corral-testapp;
// fastcgi: php-cgi; cgi: a shell script; wsgi: a WSGI callable) goes through a random
// sequence of changes — add, remove, rename an app; its command, env, workers,
// concurrency, health_path; routes; a second listener added, removed, switched to TLS and
// between certificates — with a reload under load after each. After every step:
//   - the supervisor and the proxy are alive (the same proxy process throughout);
//   - every route is served by the right app, by its newest generation only ($WHOAMI);
//   - no request of the load failed (every app that exists before and after the step);
//   - no worker or socket leaked: the processes of the run are exactly the proxy and the
//     workers the status lists, and runtime_dir holds exactly their sockets.
//
// CORRAL_RELOAD_STEPS (default 20) and CORRAL_RELOAD_SEED (default: from the clock) steer
// it; `make soak-reload` runs a long sequence. A failure prints the seed and the step.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/load.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const std::string kApps = CORRAL_SOURCE_DIR "/tests/apps";
const std::vector<std::string> kKinds = {"http", "fastcgi", "cgi", "wsgi"};

struct AppModel {
  std::string name;
  std::string kind;
  int workers = 1;
  int concurrency = 1;
  int serial = 1;            // bumps with every env change: $WHOAMI = name:serial
  bool wrapped = false;      // command (http, fastcgi) or cwd (cgi, wsgi) variant
  bool explicit_health = false;

  std::string whoami() const { return name + ":" + std::to_string(serial); }
  /// The URL path that answers $WHOAMI under the app's route.
  std::string probe_path() const {
    const std::string base = "/" + name + "/";
    if (kind == "cgi") return base + "whoami.sh";
    if (kind == "fastcgi") return base + "whoami.php";
    return base + "whoami";
  }
};

struct Model {
  std::vector<AppModel> apps;  // file order = creation order
  std::string alias_app;       // "" = no /alias/ route; else the app it points at (first in file)
  int second_listener = 0;     // 0 none, 1 plaintext, 2 TLS cert a, 3 TLS cert b
  int next_name = 0;
  std::vector<std::string> removed;  // names removed or renamed away, which may come back

  AppModel* find(const std::string& name) {
    for (auto& a : apps)
      if (a.name == name) return &a;
    return nullptr;
  }
};

class ReloadPropertyTest : public IntegrationTest {
 protected:
  void SetUp() override {
    for (const std::string n : {"a", "b"}) ASSERT_NO_FATAL_FAILURE(make_cert(n, "cert-" + n));
  }

  std::string render(const Model& m) const {
    std::string t = "[supervisor]\nruntime_dir = " + quote(rt_.path() + "/r") +
                    "\nlog_level = \"info\"\ngraceful_timeout = \"5s\"\n\n[proxy]\naccess_log = \"off\"\n";
    t += "\n[[listener]]\naddress = \"127.0.0.1:0\"\n";
    if (m.second_listener > 0) {
      t += "\n[[listener]]\naddress = \"127.0.0.2:0\"\n";
      if (m.second_listener >= 2) {
        const std::string c = m.second_listener == 2 ? "a" : "b";
        t += "tls = { cert = " + quote(c + ".pem") + ", key = " + quote(c + ".key") + " }\n";
      }
    }
    if (!m.alias_app.empty()) t += "\n[[route]]\npath = \"/alias/\"\napp = " + quote(m.alias_app) + "\n";
    for (auto& a : m.apps) t += "\n[[route]]\npath = " + quote("/" + a.name + "/") + "\napp = " + quote(a.name) + "\n";
    for (auto& a : m.apps) {
      t += "\n[app." + a.name + "]\nkind = " + quote(a.kind) + "\n";
      t += "workers = " + std::to_string(a.workers) + "\nconcurrency = " + std::to_string(a.concurrency) + "\n";
      t += "boot_timeout = \"20s\"\ngraceful_timeout = \"5s\"\n";
      if (a.kind == "http") {
        t += a.wrapped ? "command = [\"/usr/bin/env\", " + quote(bin_path("corral-testapp")) + "]\n"
                       : "command = [" + quote(bin_path("corral-testapp")) + "]\n";
      } else if (a.kind == "fastcgi") {
        t += a.wrapped ? "command = [\"/usr/bin/env\", \"/usr/bin/php-cgi\"]\n" : "command = [\"/usr/bin/php-cgi\"]\n";
        t += "root = " + quote(kApps + "/php") + "\n";
      } else if (a.kind == "cgi") {
        t += "root = " + quote(kApps + "/cgi") + "\n";
        if (a.wrapped) t += "cwd = \"/tmp\"\n";
      } else {
        t += "module = \"whoami_app:app\"\npython_path = [" + quote(kApps + "/wsgi_whoami") + "]\n";
        if (a.wrapped) t += "cwd = \"/tmp\"\n";
      }
      if (a.explicit_health) t += "health_path = " + quote(a.probe_path()) + "\n";
      // php-cgi exits on its own after 500 requests unless told otherwise (recycling is
      // max_requests' job here).
      const std::string php = a.kind == "fastcgi" ? ", PHP_FCGI_MAX_REQUESTS = \"0\"" : "";
      t += "env = { WHOAMI = " + quote(a.whoami()) + php + ", CORRAL_ITEST_RUN = " + quote(rt_.path()) + " }\n";
    }
    return t;
  }

  AppModel new_app(Model& m, std::mt19937& rng) {
    AppModel a;
    a.name = "app" + std::to_string(m.next_name++);
    a.kind = kKinds[rng() % kKinds.size()];
    a.workers = 1 + static_cast<int>(rng() % 2);
    a.concurrency = 1 + static_cast<int>(rng() % 3);
    // A single php-cgi process serves one FastCGI connection at a time (more need
    // PHP_FCGI_CHILDREN): with concurrency above 1 a request on a second kept-alive
    // connection would wait for the first connection to close.
    if (a.kind == "fastcgi") a.concurrency = 1;
    return a;
  }

  // One random change; returns its description and the apps whose routes stay the same
  // (the load runs on those).
  std::string mutate(Model& m, std::mt19937& rng, std::set<std::string>& unstable) {
    auto pick = [&]() -> AppModel& { return m.apps[rng() % m.apps.size()]; };
    switch (rng() % 11) {
      case 0: {
        if (m.apps.size() >= 5) return mutate(m, rng, unstable);
        m.apps.push_back(new_app(m, rng));
        if (!m.removed.empty() && rng() % 2 == 0) {
          // A name removed earlier comes back (its old workers may still be draining).
          m.apps.back().name = m.removed.back();
          m.apps.back().serial = 100 + m.next_name;  // not the old generation's answer
          m.removed.pop_back();
          unstable.insert(m.apps.back().name);
          return "add " + m.apps.back().name + " again (" + m.apps.back().kind + ")";
        }
        return "add " + m.apps.back().name + " (" + m.apps.back().kind + ")";
      }
      case 1: {
        if (m.apps.size() <= 2) return mutate(m, rng, unstable);
        size_t i = rng() % m.apps.size();
        std::string name = m.apps[i].name;
        unstable.insert(name);
        m.removed.push_back(name);
        m.apps.erase(m.apps.begin() + static_cast<long>(i));
        if (m.alias_app == name) m.alias_app.clear();
        return "remove " + name;
      }
      case 2: {
        AppModel& a = pick();
        std::string old = a.name;
        unstable.insert(old);
        m.removed.push_back(old);
        a.name = "app" + std::to_string(m.next_name++);
        if (m.alias_app == old) m.alias_app = a.name;
        unstable.insert("/alias/");
        return "rename " + old + " -> " + a.name;
      }
      case 3: {
        AppModel& a = pick();
        ++a.serial;
        return "env of " + a.name;
      }
      case 4: {
        AppModel& a = pick();
        a.wrapped = !a.wrapped;
        return std::string(a.kind == "http" || a.kind == "fastcgi" ? "command" : "cwd") + " of " + a.name;
      }
      case 5: {
        AppModel& a = pick();
        a.workers = a.workers % 3 + 1;
        return "workers of " + a.name + " -> " + std::to_string(a.workers);
      }
      case 6: {
        AppModel& a = pick();
        if (a.kind == "fastcgi") return mutate(m, rng, unstable);  // php-cgi: one at a time (see new_app)
        a.concurrency = a.concurrency % 4 + 1;
        return "concurrency of " + a.name + " -> " + std::to_string(a.concurrency);
      }
      case 7: {
        AppModel& a = pick();
        a.explicit_health = !a.explicit_health;
        return "health_path of " + a.name;
      }
      case 8: {
        unstable.insert("/alias/");
        m.alias_app = rng() % 3 == 0 ? std::string() : pick().name;
        return "route /alias/ -> " + (m.alias_app.empty() ? std::string("(none)") : m.alias_app);
      }
      case 9: {
        // Reorder the routes (and the apps' tables): distinct prefixes, same meaning.
        std::shuffle(m.apps.begin(), m.apps.end(), rng);
        return "routes reordered";
      }
      default: {
        int before = m.second_listener;
        do m.second_listener = static_cast<int>(rng() % 4);
        while (m.second_listener == before);
        static const char* names[] = {"none", "plaintext", "TLS (cert a)", "TLS (cert b)"};
        return std::string("second listener: ") + names[before] + " -> " + names[m.second_listener];
      }
    }
  }

  // The status settled on the model: every app with its workers, all ready and of the app's
  // newest generation, no retiring worker, no removed app still draining.
  bool settled(const nlohmann::json& st, const Model& m, std::string& why) {
    if (st.value("reloading", false)) return why = "reloading", false;
    if (st["apps"].size() != m.apps.size()) return why = "apps: " + std::to_string(st["apps"].size()), false;
    for (auto& app : st["apps"]) {
      if (app.value("removed", false)) return why = "removed app still draining", false;
      const AppModel* a = nullptr;
      for (auto& x : m.apps)
        if (x.name == app["name"]) a = &x;
      if (!a) return why = "unknown app " + app["name"].get<std::string>(), false;
      if (static_cast<int>(app["workers"].size()) != a->workers)
        return why = a->name + " has " + std::to_string(app["workers"].size()) + " workers", false;
      for (auto& w : app["workers"]) {
        if (w.value("state", "") != "ready" || w.value("retiring", "") != "" || w.value("pid", 0) <= 0)
          return why = a->name + " worker not ready: " + w.dump(), false;
        if (w.value("generation", 0) != app.value("generation", -1))
          return why = a->name + " worker of an old generation: " + w.dump(), false;
      }
    }
    return true;
  }

  std::string get(const std::string& url, bool tls, std::string* cert_subject = nullptr) {
    std::vector<std::string> args = {"-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"};
    if (tls) args.insert(args.end(), {"-k", "-v"});
    args.push_back(url);
    std::vector<std::string> argv = {"curl"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = run_process(argv, 15s);
    if (cert_subject) {
      auto p = r.err.find("subject: ");
      *cert_subject = p == std::string::npos ? "" : r.err.substr(p + 9, r.err.find('\n', p) - p - 9);
    }
    auto nl = r.out.rfind('\n');
    if (nl == std::string::npos) return "curl failed: " + r.err;
    return r.out.substr(nl + 1) + " " + r.out.substr(0, nl);
  }

  // Every invariant after a step; returns "" or what is wrong.
  std::string check(const Model& m, pid_t proxy_pid) {
    std::string why;
    if (!corral_->running()) return "the supervisor is not running";
    nlohmann::json st;
    if (!wait_status([&](const nlohmann::json& s) { st = s; return settled(s, m, why); }, 30s))
      return "never settled: " + why + "\n" + st.dump();
    if (st["proxy"].value("pid", 0) != proxy_pid) return "the proxy was restarted: " + st["proxy"].dump();
    // Routes: each app answers its own $WHOAMI, newest generation only (several requests
    // reach several workers).
    for (auto& a : m.apps)
      for (int i = 0; i < 2 * a.workers; ++i) {
        HttpResponse r = http_get(main_port_, a.probe_path());
        if (r.status != 200 || r.body != a.whoami())
          return a.probe_path() + " answered " + std::to_string(r.status) + " '" + r.body + "', expected '" + a.whoami() + "'";
      }
    if (!m.alias_app.empty()) {
      AppModel alias = *const_cast<Model&>(m).find(m.alias_app);
      std::string path = alias.probe_path();
      path.replace(0, alias.name.size() + 2, "/alias/");
      HttpResponse r = http_get(main_port_, path);
      // The alias mounts the app at /alias/: http and wsgi answer any path, cgi and php run the script.
      if (r.status != 200 || r.body != alias.whoami())
        return "/alias/ answered " + std::to_string(r.status) + " '" + r.body + "', expected " + alias.whoami();
    } else if (http_get(main_port_, "/alias/whoami").status != 404) {
      return "/alias/ still routed after its route was removed";
    }
    // Listeners: exactly the model's, the second one speaking what it should.
    const size_t want_listeners = m.second_listener ? 2 : 1;
    if (st["listeners"].size() != want_listeners) return "listeners: " + st["listeners"].dump();
    if (m.second_listener) {
      const std::string bound = st["listeners"][1].value("bound", "");
      const AppModel& a = m.apps.front();
      const bool tls = m.second_listener >= 2;
      std::string subject;
      std::string got = get(std::string(tls ? "https://" : "http://") + bound + a.probe_path(), tls, &subject);
      if (got != "200 " + a.whoami()) return "second listener " + bound + ": " + got;
      const std::string want_cn = m.second_listener == 2 ? "CN=cert-a" : "CN=cert-b";
      if (tls && subject.find(want_cn) == std::string::npos) return "second listener presents '" + subject + "', not " + want_cn;
    }
    // Leaks: the run's processes are the supervisor, the proxy and the listed workers; runtime_dir holds
    // control.sock and the listed workers' sockets.
    std::set<pid_t> want;
    std::set<std::string> sockets = {"control.sock", "body"};  // body: the default temp_dir
    for (auto& app : st["apps"])
      for (auto& w : app["workers"]) {
        want.insert(w.value("pid", 0));
        std::string s = w.value("socket", "");
        sockets.insert(s.substr(s.rfind('/') + 1));
      }
    std::set<pid_t> have;
    for (int i = 0; i < 40; ++i) {
      have.clear();
      for (auto& p : leftover_processes(corral_->pid(), rt_.path(), {}, corral_->start_ticks()))
        if (p.pid != corral_->pid() && p.pid != proxy_pid) have.insert(p.pid);
      if (have == want) break;
      std::this_thread::sleep_for(50ms);  // a stopped worker may still be on its way out
    }
    if (have != want) {
      std::string list;
      for (pid_t p : have) {
        ProcInfo info;
        proc_info(p, info);
        list += " " + std::to_string(p) + (want.count(p) ? "" : "(extra: " + info.cmdline + ")");
      }
      return "worker processes of the run:" + list + "; status lists " + std::to_string(want.size());
    }
    std::set<std::string> files;
    if (DIR* d = ::opendir((rt_.path() + "/r").c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") files.insert(e->d_name);
      ::closedir(d);
    }
    if (files != sockets) {
      std::string list;
      for (auto& f : files) list += " " + f + (sockets.count(f) ? "" : "(extra)");
      return "runtime_dir holds:" + list;
    }
    return "";
  }

  int main_port_ = 0;
};

TEST_F(ReloadPropertyTest, RandomChangesUnderLoadLoseNothing) {
  const char* steps_env = std::getenv("CORRAL_RELOAD_STEPS");
  const char* seed_env = std::getenv("CORRAL_RELOAD_SEED");
  const int steps = steps_env ? std::atoi(steps_env) : 20;
  const unsigned seed = seed_env ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                                 : static_cast<unsigned>(SteadyClock::now().time_since_epoch().count());
  std::printf("[reload-property] seed %u, %d steps (CORRAL_RELOAD_SEED=%u CORRAL_RELOAD_STEPS=%d to repeat)\n", seed,
              steps, seed, steps);
  std::mt19937 rng(seed);
  Model m;
  for (const auto& kind : kKinds) {  // one app of every kind to begin with
    AppModel a = new_app(m, rng);
    a.kind = kind;
    if (kind == "fastcgi") a.concurrency = 1;
    m.apps.push_back(a);
  }
  m.alias_app = m.apps[0].name;
  const std::string cfg = rt_.write_file("corral.toml", render(m));
  corral_ = std::make_unique<CorralProcess>(rt_, cfg);
  std::string error;
  ASSERT_TRUE(corral_->start(30s, &error)) << error;
  main_port_ = corral_->port(0);
  ASSERT_GT(main_port_, 0);
  const pid_t proxy_pid = corral_->status()["proxy"].value("pid", 0);
  ASSERT_GT(proxy_pid, 0);
  std::string problem = check(m, proxy_pid);
  ASSERT_EQ(problem, "") << "before any change";

  int total_ok = 0;
  const auto t0 = SteadyClock::now();
  for (int step = 1; step <= steps; ++step) {
    Model before = m;
    std::set<std::string> unstable;
    const std::string what = mutate(m, rng, unstable);
    // The load: every app present before and after under the same name, accepting either
    // generation's answer while the reload turns it over.
    Http1Load::Expect expect;
    for (auto& a : before.apps) {
      const AppModel* after = m.find(a.name);
      if (!after || unstable.count(a.name) || after->kind != a.kind) continue;
      expect[a.probe_path()] = {a.whoami(), after->whoami()};
    }
    Http1Load load(main_port_, expect, 4, Http1Load::Connections::kHalfKeepAlive, 2ms);
    std::this_thread::sleep_for(100ms);
    rt_.write_file("corral.toml", render(m));
    ProcessResult r = ctl({"reload"}, 60s);
    std::this_thread::sleep_for(200ms);
    load.stop();
    ASSERT_EQ(r.exit_code, 0) << "step " << step << " (" << what << "), seed " << seed << ": reload failed: " << r.out << r.err;
    EXPECT_EQ(load.failed(), 0) << "step " << step << " (" << what << "), seed " << seed << ":" << load.failures();
    total_ok += load.ok();
    problem = check(m, proxy_pid);
    ASSERT_EQ(problem, "") << "step " << step << " (" << what << "), seed " << seed;
    std::printf("[reload-property] step %d: %s: ok (%d requests under load)\n", step, what.c_str(), load.ok());
  }
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf("[reload-property] %d reloads in %.1f s, %d requests under load, 0 failed\n", steps, secs, total_ok);
}

}  // namespace
}  // namespace corral::itest
