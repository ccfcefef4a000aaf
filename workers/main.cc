// corral-worker: hosts apps that do not speak HTTP themselves (kind = "cgi", "wsgi"). Started by
// corral-supervisor through the launcher with the slot's listening socket as fd 3.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/base/log.h"
#include "workers/cgi_runner.h"
#include "workers/exit_codes.h"
#include "workers/http_server.h"
#include "workers/options.h"
#include "workers/wsgi/interpreter.h"
#include "workers/wsgi/wsgi_host.h"

extern char** environ;

using namespace corral;
using namespace corral::worker;

namespace {
HttpServer* g_server = nullptr;
void on_stop_signal(int) { if (g_server) g_server->stop(); }
}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_options(std::vector<std::string>(argv, argv + argc));
  log::set_program("corral-worker");
  if (!opts) {
    CORRAL_LOG(Error, "worker") << opts.error().message();
    return kExitBootError;
  }
  const std::string tag = log_tag(*opts);
  set_thread_name(*opts);

  // The socket handed over by the supervisor (systemd convention: fd 3, LISTEN_FDS=1).
  const char* fds = std::getenv("LISTEN_FDS");
  struct stat st;
  if (!fds || std::strcmp(fds, "1") != 0 || ::fstat(3, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    CORRAL_LOG(Error, tag) << "no listening socket on fd 3 (LISTEN_FDS=1); corral-worker is started by corral-supervisor";
    return kExitBootError;
  }
  ::fcntl(3, F_SETFL, ::fcntl(3, F_GETFL) | O_NONBLOCK);
  // Returns only when the app is to run on the embedded interpreter (logged why).
  if (opts->kind == "wsgi") wsgi::exec_interpreter(*opts, tag, std::vector<std::string>(argv, argv + argc));
  ::fcntl(3, F_SETFD, FD_CLOEXEC);  // never inherited by CGI programs or app subprocesses
  if (opts->kind == "wsgi") return wsgi::run_wsgi_worker(*opts, tag, 3);

  // What CGI programs get: our clean environment (PATH plus the app's env) minus our own.
  CgiSettings s;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string name = kv.substr(0, eq);
    if (name == "LISTEN_FDS" || name == "LISTEN_PID" || name == "LISTEN_FDNAMES" || name == "NOTIFY_SOCKET") continue;
    s.env.emplace_back(name, kv.substr(eq + 1));
  }
  s.app = opts->app;
  s.command = opts->command;
  if (!opts->root.empty()) {
    char buf[PATH_MAX];
    s.root = ::realpath(opts->root.c_str(), buf) ? std::string(buf) : opts->root;
  }
  s.index = opts->index;
  s.mounts = opts->mounts;
  s.script_filename = opts->script_filename;
  s.timeout = std::chrono::milliseconds(opts->timeout_ms);
  s.server_software = std::string("corral/") + CORRAL_VERSION;
  CgiRunner runner(std::move(s));
  if (auto ok = runner.check(); !ok) {
    CORRAL_LOG(Error, tag) << "cannot load the CGI app: " << ok.error().message();
    return kExitAppLoadError;
  }

  HttpServer server(3, opts->concurrency, runner, tag);
  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // programs may exit before reading their body
  if (auto ok = server.run(); !ok) {
    CORRAL_LOG(Error, tag) << ok.error().message();
    return kExitBootError;
  }
  return kExitOk;
}
