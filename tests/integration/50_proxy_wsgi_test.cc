// kind = "wsgi": real Flask apps (Debian's python3-flask) and hand-written WSGI callables in
// corral-worker behind the proxy. Routes returning text, JSON, streamed generators, files and
// errors; request bodies and query strings; the three worker classes, with concurrency
// observed by the app itself (peak requests in flight per process, overlapping CPU work of
// distinct processes), never by timings; 50 parallel clients; PEP 3333 details; an import
// error at boot; SIGTERM with a request in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

extern char** environ;

// greenlet switches stacks by copying slices of the C stack, which AddressSanitizer reports
// as stack-buffer-underflow inside greenlet itself (it carries no fiber annotations). The gevent
// worker class is therefore exercised in the plain build only.
#if defined(__SANITIZE_ADDRESS__)
#define CORRAL_SKIP_GEVENT_UNDER_ASAN() GTEST_SKIP() << "greenlet's stack switching is not AddressSanitizer-clean"
#else
#define CORRAL_SKIP_GEVENT_UNDER_ASAN() (void)0
#endif

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps";

class ProxyWsgiTest : public IntegrationTest {
 protected:
  // A wsgi app: no command, corral-worker hosts `module` from tests/apps/<dir>.
  AppSpec& wsgi_app(const std::string& name, const std::string& dir, const std::string& module,
                    const std::string& worker_class, int workers, int concurrency) {
    AppSpec& a = config_.app(name);
    a.kind = "wsgi";
    a.command.clear();
    a.env.erase("TESTAPP_LOG");
    a.set("module", quote(module));
    a.set("python_path", "[" + quote(kApps + "/" + dir) + "]");
    a.set("worker_class", quote(worker_class));
    a.workers(workers).concurrency(concurrency);
    return a;
  }
  AppSpec& flask(const std::string& worker_class, int workers, int concurrency) {
    return wsgi_app("site", "wsgi_flask", "flask_app:app", worker_class, workers, concurrency);
  }
  AppSpec& pep3333() { return wsgi_app("raw", "wsgi_pep3333", "pep3333_app", "sync", 1, 1); }

  nlohmann::json get_json(const std::string& path, const std::vector<std::string>& extra = {}) {
    HttpResponse r = http_get(port(), path, extra);
    EXPECT_EQ(r.status, 200) << path << ": " << r.error << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path << ": not JSON: " << r.body;
    return j;
  }

  // The highest "peak" (requests in flight at once in one process) per worker pid, asked
  // straight from each worker's socket after the load.
  std::map<int, int> peaks() {
    std::map<int, int> out;
    for (auto& s : CorralProcess::worker_sockets(corral_->status(), "site")) {
      HttpResponse r = unix_get(s, "/peak");
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (r.status == 200 && j.is_object()) out[j["pid"].get<int>()] = j["peak"].get<int>();
    }
    return out;
  }
};

// ---- Flask routes ---------------------------------------------------------------------------

TEST_F(ProxyWsgiTest, FlaskTextJsonStreamFileAndErrors) {
  flask("gthread", 1, 4);
  allowed_errors_ = {"boom from /error", "Exception on /error", "Traceback", "File \"", "raise ", "^^^",
                     "RuntimeError", "rv = ", "return self", "response = self"};
  ASSERT_NO_FATAL_FAILURE(start());

  HttpResponse r = http_get(port(), "/");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "hello from flask\n");
  EXPECT_EQ(r.header("Content-Type"), "text/html; charset=utf-8");

  nlohmann::json j = get_json("/json");
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["text"], "ünïcode");

  r = http_get(port(), "/stream?n=50");
  EXPECT_EQ(r.status, 200) << r.error;
  std::string want;
  for (int i = 0; i < 50; ++i) want += "chunk " + std::to_string(i) + "\n";
  EXPECT_EQ(r.body, want);

  r = http_get(port(), "/file");
  EXPECT_EQ(r.status, 200) << r.error;
  std::ifstream f(kApps + "/wsgi_flask/static.txt", std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(r.body.size(), ss.str().size());
  EXPECT_TRUE(r.body == ss.str()) << "file body differs";

  r = http_get(port(), "/error");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("boom"), std::string::npos) << "the traceback leaked into the response: " << r.body;
  EXPECT_EQ(r.body.find("Traceback"), std::string::npos) << r.body;
  r = http_get(port(), "/no-such-route");
  EXPECT_EQ(r.status, 404);
  stop_and_expect_clean();
  EXPECT_FALSE(log_lines_with("boom from /error").empty()) << "the traceback is not in the log";
}

TEST_F(ProxyWsgiTest, FlaskBodiesQueryStringsAndForwarding) {
  flask("gthread", 1, 2);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json j = get_json("/echo?a=1&a=2&b=%C3%A9%20x");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["args"]["a"], nlohmann::json::array({"1", "2"}));
  EXPECT_EQ(j["args"]["b"], nlohmann::json::array({"é x"}));
  EXPECT_EQ(j["length"], 0);
  EXPECT_EQ(j["remote_addr"], "127.0.0.1") << "REMOTE_ADDR comes from the proxy's X-Forwarded-For";
  EXPECT_EQ(j["scheme"], "http");
  EXPECT_FALSE(j["request_id"].is_null()) << "X-Request-Id reaches the app";

  j = get_json("/echo", {"-d", "x=1&y=two+words"});
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["form"]["y"], nlohmann::json::array({"two words"}));
  EXPECT_EQ(j["content_type"], "application/x-www-form-urlencoded");

  // A 1 MiB binary body, chunked by the client: the proxy buffers it, the app reads it all.
  std::string big = rt_.path() + "/big.bin";
  {
    std::ofstream out(big, std::ios::binary);
    for (int i = 0; i < (1 << 20); ++i) out.put(static_cast<char>((i * 7919) & 0xff));
  }
  ProcessResult sum = run_process({"sha256sum", big}, 10s);
  j = get_json("/echo", {"-X", "PUT", "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream",
                         "--data-binary", "@" + big});
  EXPECT_EQ(j["length"], 1 << 20);
  EXPECT_EQ(j["sha256"], sum.out.substr(0, 64));
}

// ---- worker classes and concurrency ---------------------------------------------------------

TEST_F(ProxyWsgiTest, SyncWorkerServesOneRequestAtATime) {
  flask("sync", 2, 1).queue_timeout("30s");
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(8, [&](int) { return http_get(port(), "/sleep?ms=150"); });
  for (auto& r : rs) EXPECT_EQ(r.status, 200) << r.error;
  auto p = peaks();
  ASSERT_EQ(p.size(), 2u);
  for (auto& [pid, peak] : p) EXPECT_EQ(peak, 1) << "sync worker " << pid << " ran " << peak << " requests at once";
}

TEST_F(ProxyWsgiTest, GthreadThreadsServeSleepingRequestsTogether) {
  flask("gthread", 1, 4);
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(8, [&](int) { return http_get(port(), "/sleep?ms=400"); });
  for (auto& r : rs) EXPECT_EQ(r.status, 200) << r.error;
  auto p = peaks();
  ASSERT_EQ(p.size(), 1u);
  // Threads wait in time.sleep() without the GIL: all four run at once (never more: the
  // proxy sends at most `concurrency`).
  EXPECT_EQ(p.begin()->second, 4);
}

TEST_F(ProxyWsgiTest, GeventGreenletsServeSleepingRequestsTogether) {
  CORRAL_SKIP_GEVENT_UNDER_ASAN();
  flask("gevent", 1, 10);
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(20, [&](int) { return http_get(port(), "/sleep?ms=400"); });
  for (auto& r : rs) EXPECT_EQ(r.status, 200) << r.error;
  auto p = peaks();
  ASSERT_EQ(p.size(), 1u);
  // time.sleep is monkey-patched: ten greenlets sleep at once in one thread.
  EXPECT_EQ(p.begin()->second, 10);
  // And it really is one OS thread serving them.
  std::set<std::string> threads;
  for (int i = 0; i < 5; ++i) threads.insert(get_json("/count").value("thread", nlohmann::json()).dump());
  EXPECT_EQ(threads.size(), 1u);
}

TEST_F(ProxyWsgiTest, WorkersRunCpuBoundRequestsInParallel) {
  // CPU-bound work needs processes: with two sync workers, two requests compute at the same
  // moment in two different processes (their [start, end] intervals overlap).
  flask("sync", 2, 1);
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(4, [&](int) { return http_get(port(), "/cpu?n=3000000"); });
  struct Span {
    int pid;
    double start, end;
  };
  std::vector<Span> spans;
  for (auto& r : rs) {
    ASSERT_EQ(r.status, 200) << r.error;
    auto j = nlohmann::json::parse(r.body);
    spans.push_back({j["pid"].get<int>(), j["start"].get<double>(), j["end"].get<double>()});
  }
  bool overlap = false;
  for (size_t a = 0; a < spans.size(); ++a)
    for (size_t b = a + 1; b < spans.size(); ++b)
      if (spans[a].pid != spans[b].pid && spans[a].start < spans[b].end && spans[b].start < spans[a].end)
        overlap = true;
  EXPECT_TRUE(overlap) << "no two workers computed at the same time";
}

TEST_F(ProxyWsgiTest, FiftyParallelClientsOnThreadedWorkers) {
  flask("gthread", 2, 8).queue_timeout("30s");
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(50, [&](int i) { return http_get(port(), "/count?token=t" + std::to_string(i)); });
  std::set<int> counts_seen;
  std::map<int, std::set<int>> per_pid;
  for (size_t i = 0; i < rs.size(); ++i) {
    ASSERT_EQ(rs[i].status, 200) << "client " << i << ": " << rs[i].error;
    auto j = nlohmann::json::parse(rs[i].body);
    EXPECT_EQ(j["token"], "t" + std::to_string(i)) << "a response went to the wrong client";
    EXPECT_TRUE(per_pid[j["pid"].get<int>()].insert(j["n"].get<int>()).second)
        << "the locked counter repeated a value: a lost update";
  }
  size_t total = 0;
  for (auto& [pid, ns] : per_pid) total += ns.size();
  EXPECT_EQ(total, 50u);
}

// ---- PEP 3333 details with a hand-written callable ------------------------------------------

TEST_F(ProxyWsgiTest, Pep3333Environ) {
  pep3333().env["SCRIPT_NAME"] = "/mount";
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json e = get_json("/mount/environ?q=1%202", {"-H", "X_Sneaky: 1", "-H", "Cookie: a=1", "-H", "Cookie: b=2",
                                                          "-H", "Content-Type: text/x-test", "-d", "body"});
  EXPECT_EQ(e["REQUEST_METHOD"], "POST");
  EXPECT_EQ(e["SCRIPT_NAME"], "/mount");
  EXPECT_EQ(e["PATH_INFO"], "/environ");
  EXPECT_EQ(e["QUERY_STRING"], "q=1%202");
  EXPECT_EQ(e["CONTENT_TYPE"], "text/x-test");
  EXPECT_EQ(e["CONTENT_LENGTH"], "4");
  EXPECT_EQ(e["SERVER_PROTOCOL"], "HTTP/1.1");
  EXPECT_EQ(e["SERVER_NAME"], "127.0.0.1");
  EXPECT_EQ(e["SERVER_PORT"], std::to_string(port()));
  EXPECT_EQ(e["REMOTE_ADDR"], "127.0.0.1");
  EXPECT_EQ(e["HTTP_COOKIE"], "a=1; b=2");
  EXPECT_FALSE(e.contains("HTTP_X_SNEAKY")) << "header names with '_' must be dropped";
  EXPECT_EQ(e["wsgi.url_scheme"], "http");
  EXPECT_EQ(e["wsgi.version"], nlohmann::json::array({1, 0}));
  EXPECT_EQ(e["wsgi.multithread"], false);
  EXPECT_EQ(e["wsgi.run_once"], false);
  EXPECT_EQ(e["has_file_wrapper"], true);
  EXPECT_EQ(e["errors_has_write"], true);
  // PATH_INFO is percent-decoded and latin-1: UTF-8 bytes come through unchanged.
  HttpResponse r = http_get(port(), "/latin1/%C3%A9");
  EXPECT_EQ(r.body, "/latin1/\xc3\xa9");
  stop_and_expect_clean();
  EXPECT_FALSE(log_lines_with("wsgi.errors line from /environ").empty()) << "wsgi.errors does not reach the log";
}

TEST_F(ProxyWsgiTest, Pep3333ResponseHandling) {
  pep3333();
  allowed_errors_ = {"the app raised", "the app returned", "Traceback", "File \"", "start_response", "raise ",
                     "^^^", "Error:", "late (expected", "return ["};
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(http_get(port(), "/write").body, "from write(), then from the iterable");
  EXPECT_EQ(http_get(port(), "/close").body, "abc");
  HttpResponse r = http_get(port(), "/exc_info");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "replaced");
  r = http_get(port(), "/empty");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(http_get(port(), "/generator").body, std::string(100'000, 'x'));
  r = http_get(port(), "/length");
  EXPECT_EQ(r.body, "hello");
  EXPECT_EQ(r.header("Content-Length"), "5");
  std::ifstream src(kApps + "/wsgi_pep3333/pep3333_app.py", std::ios::binary);
  std::stringstream ss;
  ss << src.rdbuf();
  r = http_get(port(), "/file_wrapper");
  EXPECT_EQ(r.body, ss.str());
  EXPECT_EQ(r.header("Content-Length"), std::to_string(ss.str().size())) << "a regular file announces its length";

  // Invalid responses: 500, nothing of the app's output leaks.
  for (const char* p : {"/bad_header", "/hop", "/no_start", "/twice", "/str_body"}) {
    r = http_get(port(), p);
    EXPECT_EQ(r.status, 500) << p;
    EXPECT_EQ(r.body, "Internal Server Error\n") << p;
    EXPECT_EQ(r.header("Injected"), "") << p;
  }
  // Failures after the head is out: the response is cut (curl reports a transfer error).
  for (const char* p : {"/exc_info_late", "/failing_iter"}) {
    r = http_get(port(), p);
    EXPECT_TRUE(r.status == 0 || r.status == 502 || !r.error.empty()) << p << " looked complete: " << r.body;
  }
  // close() was called on every iterable, including the one that failed.
  nlohmann::json closed = get_json("/closed");
  EXPECT_NE(std::find(closed.begin(), closed.end(), "close"), closed.end()) << closed.dump();
  EXPECT_NE(std::find(closed.begin(), closed.end(), "failing"), closed.end()) << closed.dump();
}

TEST_F(ProxyWsgiTest, VirtualenvIsTheInterpretersPrefix) {
  // A venv without system site-packages: its own module is importable, Debian's Flask is not.
  std::string venv = rt_.path() + "/venv";
  ProcessResult made = run_process({"/usr/bin/python3", "-m", "venv", "--without-pip", venv}, 30s);
  ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
  std::string pkg = venv + "/lib/python3.11/site-packages/venvonly";
  ASSERT_EQ(run_process({"mkdir", "-p", pkg}, 5s).exit_code, 0);
  std::ofstream(pkg + "/__init__.py") << "import sys\n"
                                         "def app(environ, start_response):\n"
                                         "    try:\n"
                                         "        import flask\n"
                                         "        seen = 'flask visible'\n"
                                         "    except ImportError:\n"
                                         "        seen = 'flask hidden'\n"
                                         "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                                         "    return [(sys.prefix + ' ' + seen).encode()]\n";
  AppSpec& a = wsgi_app("venv", "wsgi_pep3333", "venvonly:app", "sync", 1, 1);
  a.set("virtualenv", quote(venv));
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, venv + " flask hidden");
}

// ---- lifecycle ------------------------------------------------------------------------------

TEST_F(ProxyWsgiTest, GthreadSigtermFinishesInFlightRequests) {
  flask("gthread", 1, 4);
  ASSERT_NO_FATAL_FAILURE(start());
  auto slow = std::async(std::launch::async, [&] { return http_get(port(), "/sleep?ms=1200"); });
  std::this_thread::sleep_for(400ms);
  corral_->signal(SIGTERM);
  HttpResponse r = slow.get();
  EXPECT_EQ(r.status, 200) << r.error;
  std::optional<int> code = corral_->wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  stopped_ = true;
}

TEST_F(ProxyWsgiTest, GeventSigtermFinishesInFlightRequests) {
  CORRAL_SKIP_GEVENT_UNDER_ASAN();
  flask("gevent", 1, 4);
  ASSERT_NO_FATAL_FAILURE(start());
  auto slow = std::async(std::launch::async, [&] { return http_get(port(), "/sleep?ms=1200"); });
  std::this_thread::sleep_for(400ms);
  corral_->signal(SIGTERM);
  HttpResponse r = slow.get();
  EXPECT_EQ(r.status, 200) << r.error;
  std::optional<int> code = corral_->wait_exit(10s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  stopped_ = true;
}

TEST_F(ProxyWsgiTest, ImportErrorBacksOffUnderTheSupervisor) {
  wsgi_app("broken", "wsgi_broken", "broken_app:app", "sync", 1, 1);
  allowed_errors_ = {"exit code 4", "cannot load the WSGI app", "Traceback", "File \"", "raise ", "ImportError", "^^^",
                     "<frozen", "return ", "_bootstrap"};
  ASSERT_NO_FATAL_FAILURE(start());
  // The worker keeps failing; the supervisor retries it with growing delays, never hot.
  for (int i = 0; i < 40 && log_lines_with("failed 2 time(s) in a row").empty(); ++i) std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(log_lines_with("exit code 4").empty()) << "the app-load exit code is not in the log";
  EXPECT_FALSE(log_lines_with("ImportError: wsgi_broken cannot be imported").empty()) << "no traceback in the log";
  EXPECT_FALSE(log_lines_with("failed 2 time(s) in a row").empty()) << "no back-off";
  HttpResponse r = http_get(port(), "/", {"--max-time", "3"});
  EXPECT_NE(r.status, 200);
}

// corral-worker on its own: an app that cannot be imported exits with the app-load code
// (workers/exit_codes.h: 4) and the traceback on stderr.
TEST(WsgiWorkerBoot, ImportErrorExitsWithAppLoadCode) {
  char dir[] = "/tmp/crl-wsgiXXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string sock_path = std::string(dir) + "/s", err_path = std::string(dir) + "/err";
  int ls = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path.c_str());
  ASSERT_EQ(::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(ls, 8), 0);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, ls, 3);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  std::vector<std::string> args = {bin_path("corral-worker"), "--app", "broken", "--slot", "0", "--kind", "wsgi",
                                   "--concurrency", "1", "--timeout-ms", "1000", "--module", "broken_app:app",
                                   "--python-path", kApps + "/wsgi_broken"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char env0[] = "LISTEN_FDS=1", env1[] = "PATH=/usr/bin:/bin";
  char* envp[] = {env0, env1, nullptr};
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(err);
  ::close(ls);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  ASSERT_TRUE(WIFEXITED(status)) << ss.str();
  EXPECT_EQ(WEXITSTATUS(status), 4) << ss.str();
  EXPECT_NE(ss.str().find("cannot load the WSGI app \"broken_app:app\""), std::string::npos) << ss.str();
  EXPECT_NE(ss.str().find("ImportError: wsgi_broken cannot be imported"), std::string::npos) << ss.str();
  ::unlink(sock_path.c_str());
  ::unlink(err_path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace corral::itest
