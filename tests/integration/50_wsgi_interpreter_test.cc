// kind = "wsgi" on the interpreter binary (workers/wsgi/interpreter.h): corral-worker execs
// python3 (the virtualenv's when one is set) and its WSGI host runs as the extension module
// _corral_wsgi, so app code runs on the same optimised interpreter as under Gunicorn. The apps
// report /proc/self/exe, sys.executable, sys.argv and SIGINT's disposition; the test reads
// /proc/PID/exe of each worker itself. The fallbacks to the embedded interpreter: a virtualenv
// of another Python, the module missing or not importable, CORRAL_WSGI_EMBEDDED=1; each logged
// once per app. (The other WSGI tests, 50_proxy_wsgi and the rest, run on whichever path the
// build has: the interpreter binary in a plain build, embedded under sanitizers.)
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps";

std::string real(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

std::string exe_of(pid_t pid) {
  char buf[PATH_MAX];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// The host module's file name in the build's bin folder; "" when this build has none
// (sanitizer builds embed only).
std::string host_module_file() {
  std::string found;
  if (DIR* d = ::opendir(CORRAL_BIN_DIR)) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.starts_with("_corral_wsgi.") && name.ends_with(".so")) found = name;
    }
    ::closedir(d);
  }
  return found;
}

class WsgiInterpreterTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (host_module_file().empty()) {
      if (CORRAL_WSGI_MODULE_EXPECTED) FAIL() << "this build has no _corral_wsgi module in " << CORRAL_BIN_DIR;
      GTEST_SKIP() << "this build has no _corral_wsgi module (sanitizers): embedded only";
    }
  }
  void TearDown() override {
    IntegrationTest::TearDown();
    ::unsetenv("CORRAL_WORKER_BIN");
  }

  AppSpec& interp_app(const std::string& name, const std::string& worker_class, int workers) {
    AppSpec& a = config_.app(name);
    a.kind = "wsgi";
    a.command.clear();
    a.env.erase("TESTAPP_LOG");
    a.set("module", quote("interp_app:app"));
    a.set("python_path", "[" + quote(kApps + "/wsgi_interp") + "]");
    a.set("worker_class", quote(worker_class));
    a.workers(workers).concurrency(worker_class == "sync" ? 1 : 4);
    config_.route(name, "/" + name + "/");
    return a;
  }

  nlohmann::json ask(const std::string& app) {
    HttpResponse r = http_get(port(), "/" + app + "/");
    EXPECT_EQ(r.status, 200) << app << ": " << r.error << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_TRUE(j.is_object()) << app << ": " << r.body;
    return j.is_object() ? j : nlohmann::json::object();
  }

  // A copy of corral-worker in its own folder (with `module_bytes` as the host module when
  // given), used by the supervisor through CORRAL_WORKER_BIN.
  std::string worker_copy(const std::optional<std::string>& module_bytes) {
    std::string dir = rt_.path() + "/alt-bin";
    std::filesystem::create_directories(dir);
    std::filesystem::copy_file(bin_path("corral-worker"), dir + "/corral-worker");
    if (module_bytes) std::ofstream(dir + "/" + host_module_file()) << *module_bytes;
    ::setenv("CORRAL_WORKER_BIN", (dir + "/corral-worker").c_str(), 1);
    return dir + "/corral-worker";
  }
};

TEST_F(WsgiInterpreterTest, EveryWorkerClassRunsOnThePythonBinary) {
  std::string venv = rt_.path() + "/venv";
  ProcessResult made = run_process({"/usr/bin/python3", "-m", "venv", "--without-pip", venv}, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  interp_app("sync", "sync", 2);
  interp_app("gthread", "gthread", 1);
  interp_app("gevent", "gevent", 1);
  interp_app("venv", "sync", 1).set("virtualenv", quote(venv));
  ASSERT_NO_FATAL_FAILURE(start());

  const std::string python = real("/usr/bin/python3");
  for (std::string app : {"sync", "gthread", "gevent", "venv"}) {
    SCOPED_TRACE(app);
    nlohmann::json j = ask(app);
    EXPECT_EQ(j["exe"], python);
    EXPECT_EQ(j["executable"], app == "venv" ? venv + "/bin/python3" : "/usr/bin/python3");
    EXPECT_EQ(j["prefix"], app == "venv" ? venv : std::string("/usr"));
    EXPECT_EQ(j["host_module"], true);
    EXPECT_EQ(j["corral_module"], true);
    // As the embedded interpreter is set up: argv, signal dispositions.
    EXPECT_EQ(j["argv"], nlohmann::json::array({"corral-worker"}));
    EXPECT_EQ(j["sigint"], "<built-in function default_int_handler>");
    EXPECT_EQ(j["sigxfsz"], "<Handlers.SIG_DFL: 0>") << "python3 ignores SIGXFSZ, the embedded interpreter does not";
    EXPECT_EQ(j["path"][0], kApps + "/wsgi_interp") << "python_path first on sys.path";
    for (auto& p : j["path"]) EXPECT_EQ(p.get<std::string>().find(CORRAL_BIN_DIR), std::string::npos) << p;
    EXPECT_EQ(j["comm"].get<std::string>().substr(0, app.size() + 1), app + "#");
    EXPECT_EQ(j["server"].get<std::string>().rfind("corral/", 0), 0u) << j["server"];
  }
  // From the outside: every worker process is the interpreter binary.
  nlohmann::json st = corral_->status();
  for (std::string app : {"sync", "gthread", "gevent", "venv"}) {
    auto pids = CorralProcess::worker_pids(st, app);
    EXPECT_EQ(pids.size(), app == "sync" ? 2u : 1u) << app;
    for (pid_t pid : pids) EXPECT_EQ(exe_of(pid), python) << app << " worker " << pid;
  }
  EXPECT_EQ(log_lines_with("Python runs embedded").size(), 0u);
  EXPECT_EQ(log_lines_with("interpreter /usr/bin/python3").size(), 4u) << "one \"serving\" line per worker";
  stop_and_expect_clean();
}

TEST_F(WsgiInterpreterTest, AnotherPythonsVirtualenvOrTheSwitchRunsEmbedded) {
  // A virtualenv whose python3 is not 3.11 (a stand-in that leaves a mark if it is ever run):
  // the module cannot load into it, so the app runs embedded with the venv as prefix, as before.
  std::string venv = rt_.path() + "/venv312", mark = rt_.path() + "/ran";
  std::filesystem::create_directories(venv + "/bin");
  std::ofstream(venv + "/bin/python3") << "#!/bin/sh\ntouch " << mark << "\nexit 1\n";
  ::chmod((venv + "/bin/python3").c_str(), 0755);
  std::ofstream(venv + "/pyvenv.cfg") << "home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.12.1\n";
  interp_app("other", "sync", 2).set("virtualenv", quote(venv));
  interp_app("forced", "gthread", 1).env["CORRAL_WSGI_EMBEDDED"] = "1";
  ASSERT_NO_FATAL_FAILURE(start());

  const std::string worker = real(bin_path("corral-worker"));
  nlohmann::json j = ask("other");
  EXPECT_EQ(j["exe"], worker);
  EXPECT_EQ(j["executable"], venv + "/bin/python3");
  EXPECT_EQ(j["host_module"], false);
  EXPECT_EQ(j["sigint"], "<built-in function default_int_handler>");
  EXPECT_EQ(j["sigxfsz"], "<Handlers.SIG_DFL: 0>");
  EXPECT_EQ(j["argv"], nlohmann::json::array({"corral-worker"}));
  j = ask("forced");
  EXPECT_EQ(j["exe"], worker);
  EXPECT_EQ(j["executable"], "/usr/bin/python3");
  nlohmann::json st = corral_->status();
  for (std::string app : {"other", "forced"})
    for (pid_t pid : CorralProcess::worker_pids(st, app)) EXPECT_EQ(exe_of(pid), worker) << app;
  EXPECT_NE(::access(mark.c_str(), F_OK), 0) << "the 3.12 stand-in was run";
  auto lines = log_lines_with("Python runs embedded");
  ASSERT_EQ(lines.size(), 2u) << "once per app, not per worker";
  EXPECT_EQ(log_lines_with("is Python 3.12; the WSGI host module is built for Python 3.11").size(), 1u);
  EXPECT_EQ(log_lines_with("CORRAL_WSGI_EMBEDDED is set").size(), 1u);
  EXPECT_EQ(log_lines_with("embedded libpython").size(), 3u) << "one \"serving\" line per worker";
  stop_and_expect_clean();
}

TEST_F(WsgiInterpreterTest, MissingHostModuleRunsEmbedded) {
  std::string worker = worker_copy(std::nullopt);
  interp_app("site", "sync", 1);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json j = ask("site");
  EXPECT_EQ(j["exe"], real(worker));
  EXPECT_EQ(j["host_module"], false);
  EXPECT_EQ(log_lines_with("is neither next to corral-worker nor in").size(), 1u);
  stop_and_expect_clean();
}

TEST_F(WsgiInterpreterTest, UnimportableHostModuleRunsEmbedded) {
  // python3 is started, the bootstrap's import fails, it execs corral-worker back.
  std::string worker = worker_copy(std::string("not an ELF file"));
  interp_app("site", "gthread", 1);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json j = ask("site");
  EXPECT_EQ(j["exe"], real(worker));
  EXPECT_EQ(j["host_module"], false);
  EXPECT_EQ(j["argv"], nlohmann::json::array({"corral-worker"}));
  auto lines = log_lines_with("cannot import");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("/usr/bin/python3 cannot import " + real(rt_.path()) + "/alt-bin"), std::string::npos)
      << lines[0];
  stop_and_expect_clean();
}

}  // namespace
}  // namespace corral::itest
