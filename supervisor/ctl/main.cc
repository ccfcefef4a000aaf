// corralctl: talks HTTP+JSON to the supervisor's control.sock.
//   corralctl [--socket PATH | -c CONFIG] status [--json]
//   corralctl [--socket PATH | -c CONFIG] reload [--plan-id ID] [--json]
//   corralctl [--socket PATH] [-c CONFIG] plan [--json]
//   corralctl [--socket PATH | -c CONFIG] scale APP N
//   corralctl [--socket PATH | -c CONFIG] stop
//   corralctl [--socket PATH | -c CONFIG] drain | undrain
//   corralctl [--socket PATH | -c CONFIG] restart-proxy [--json]
//   corralctl [--socket PATH | -c CONFIG] upgrade [--json]
//   corralctl [--socket PATH | -c CONFIG] advise [APP] [--window 60s] [--json] [--apply [--yes]]
//   corralctl check CONFIG
//   corralctl --version
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/net/socket.h"
#include "conf/loader.h"
#include "supervisor/check.h"
#include "supervisor/ctl/advise_command.h"
#include "supervisor/ctl/plan_command.h"
#include "supervisor/listeners.h"

namespace {
using nlohmann::json;

int usage() {
  std::fputs("usage: corralctl [--socket PATH | -c CONFIG] status [--json]\n"
             "       corralctl [--socket PATH | -c CONFIG] reload [--plan-id ID] [--json]\n"
             "       corralctl [--socket PATH] [-c CONFIG] plan [--json]\n"
             "       corralctl [--socket PATH | -c CONFIG] scale APP N\n"
             "       corralctl [--socket PATH | -c CONFIG] stop\n"
             "       corralctl [--socket PATH | -c CONFIG] drain | undrain\n"
             "       corralctl [--socket PATH | -c CONFIG] restart-proxy [--json]\n"
             "       corralctl [--socket PATH | -c CONFIG] upgrade [--json]\n"
             "       corralctl [--socket PATH | -c CONFIG] advise [APP] [--window 60s] [--json] [--apply [--yes]]\n"
             "       corralctl check CONFIG\n"
             "       corralctl --version\n"
             "advise measures every app (or APP) over the window: CPU time and worker time per request, time\n"
             "queued, concurrency used, memory per worker, usable cores and available memory. It recommends\n"
             "workers, concurrency and worker_class: processes for CPU-bound apps (a Python process uses one\n"
             "core), threads or gevent for apps that mostly wait, never more than memory allows. --apply\n"
             "replaces the app's workers make-before-break (asks first on a terminal; --yes does not).\n"
             "drain fails /readyz (503 \"draining\") so load balancers stop sending new clients, and ends\n"
             "keep-alive (Connection: close, HTTP/2 GOAWAY) while everything keeps serving; undrain withdraws\n"
             "it. stop (like SIGTERM) drains for [supervisor] drain_delay first, then stops gracefully.\n"
             "restart-proxy replaces corral-proxy (the binary on disk now) make-before-break: the new one\n"
             "serves before the old one stops accepting; idle keep-alive connections move over, the rest\n"
             "finish on the old one. It answers once the new proxy serves, or fails and the old one stays.\n"
             "plan shows what a reload to CONFIG (default: the running config's file) would do, one change a\n"
             "line, and exits 0 (nothing), 1 (invalid config, or no plan), 3 (a reload applies it) or 4 (needs a\n"
             "restart, or refused). reload --plan-id ID applies that plan only if nothing changed since (else\n"
             "exit 4, nothing done).\n"

             "upgrade (like SIGUSR2) re-executes the supervisor's binary in place (same pid) once a dry run\n"
             "of it passed; workers, proxy and connections keep running. It answers once done or refused.\n", stderr);
  return 2;
}

// Why the socket cannot be reached, in an operator's words.
std::string unreachable(const std::string& socket, int err) {
  if (err == ENOENT) return "no supervisor socket at " + socket + " (is corral-supervisor running? wrong -c/--socket?)";
  if (err == ECONNREFUSED) return "nothing listens on " + socket + " (corral-supervisor is not running; stale socket)";
  if (err == EACCES || err == EPERM)
    return "permission denied on " + socket + " (the control socket is 0600: run as the supervisor's user or root)";
  return "cannot reach the supervisor at " + socket + ": " + std::strerror(err);
}

// One request, one response (the server closes). Returns the status code, or -1 with a
// message on stderr when the supervisor cannot be reached.
int call(const std::string& socket, const std::string& method, const std::string& path, const std::string& req_body,
         std::string& body) {
  auto fd = corral::net::connect_unix_blocking(socket);
  if (!fd) {
    std::fprintf(stderr, "corralctl: %s\n", unreachable(socket, fd.error().sys_errno).c_str());
    return -1;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: corral\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(req_body.size()) + "\r\nConnection: close\r\n\r\n" + req_body;
  if (!corral::net::write_all(fd->get(), req)) return std::fprintf(stderr, "corralctl: write failed\n"), -1;
  std::string resp;
  char buf[16384];
  for (ssize_t n; (n = ::read(fd->get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::fprintf(stderr, "corralctl: read failed: %s\n", std::strerror(errno)), -1;
    resp.append(buf, static_cast<size_t>(n));
  }
  auto end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos || resp.size() < 12)
    return std::fprintf(stderr, "corralctl: malformed response from %s\n", socket.c_str()), -1;
  body = resp.substr(end + 4);
  return std::atoi(resp.c_str() + 9);
}

std::string human_bytes(uint64_t b) {
  char out[32];
  if (b >= (1ull << 30)) std::snprintf(out, sizeof out, "%.1fG", static_cast<double>(b) / (1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(out, sizeof out, "%.1fM", static_cast<double>(b) / (1ull << 20));
  else if (b >= 1024) std::snprintf(out, sizeof out, "%lluK", static_cast<unsigned long long>(b >> 10));
  else std::snprintf(out, sizeof out, "%llu", static_cast<unsigned long long>(b));
  return out;
}

std::string human_duration(double s) {
  char out[32];
  long t = static_cast<long>(s);
  if (t < 60) std::snprintf(out, sizeof out, "%.1fs", s);
  else if (t < 3600) std::snprintf(out, sizeof out, "%ldm%02lds", t / 60, t % 60);
  else if (t < 86400) std::snprintf(out, sizeof out, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else std::snprintf(out, sizeof out, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
  return out;
}

void print_table(const json& s) {
  std::printf("corral-supervisor %s  pid %d  %s  config %s (generation %llu)\n", s.value("version", "?").c_str(),
              s.value("pid", 0), s.value("state", "?").c_str(), s.value("config", "?").c_str(),
              static_cast<unsigned long long>(s.value("config_generation", 0ull)));
  if (s.contains("drain") && s["drain"].is_object() && s["drain"].value("draining", false)) {
    const json& d = s["drain"];
    std::printf("draining for %s: /readyz fails, keep-alive ends, the listeners keep serving",
                human_duration(d.value("drain_seconds", 0.0)).c_str());
    if (d.contains("stop_in_seconds")) std::printf("; stopping in %s\n", human_duration(d.value("stop_in_seconds", 0.0)).c_str());
    else std::printf(" (corralctl undrain to end it)\n");
  }
  for (auto& l : s["listeners"])
    std::printf("listener %s -> %s\n", l.value("address", "").c_str(), l.value("bound", "").c_str());
  if (s.contains("admin") && s["admin"].is_object())
    std::printf("admin    %s (/metrics, /status, /healthz, /readyz)\n", s["admin"].value("bound", "").c_str());
  auto& p = s["proxy"];
  // The counters are the proxy's live answer; when it did not answer in time, the last
  // periodic report's, and then the table says how old they are.
  std::string age;
  if (p.contains("stats_age_ms") && p["stats_age_ms"].is_number() && p["stats_age_ms"].get<long long>() >= 500) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "  (figures %.1fs old)", static_cast<double>(p["stats_age_ms"].get<long long>()) / 1000.0);
    age = buf;
  }
  std::printf("proxy pid %d  restarts %d  requests %llu  in flight %llu  queued %llu%s\n\n", p.value("pid", 0),
              p.value("restarts", 0), static_cast<unsigned long long>(p.value("requests", 0ull)),
              static_cast<unsigned long long>(p.value("in_flight", 0ull)),
              static_cast<unsigned long long>(p.value("queued", 0ull)), age.c_str());
  if (s.contains("proxy_replacement") && s["proxy_replacement"].is_object()) {
    const json& r = s["proxy_replacement"];
    if (r.value("in_progress", false))
      std::printf("proxy being replaced: pid %d -> pid %d (%s)\n", r.value("old_pid", 0), r.value("new_pid", 0),
                  r.value("phase", "").c_str());
    if (r.contains("retiring") && r["retiring"].is_array())
      for (auto& o : r["retiring"])
        std::printf("proxy pid %d retiring: finishing its connections, then exits\n", o.value("pid", 0));
  }
  std::printf("%-14s %4s %8s %4s %-9s %8s %9s %8s %7s %8s %8s\n", "APP", "ID", "PID", "GEN", "STATE", "INFLIGHT",
              "REQUESTS", "RESTARTS", "RSS", "CPU", "UPTIME");
  for (auto& a : s["apps"]) {
    for (auto& w : a["workers"]) {
      std::string state = w.value("state", "");
      std::string retiring = w.value("retiring", "");
      if (!retiring.empty() && state == "ready") state = "retiring";
      std::printf("%-14s %4d %8d %4llu %-9s %8llu %9llu %8d %7s %8s %8s\n", a.value("name", "").c_str(),
                  w.value("id", w.value("slot", 0)), w.value("pid", 0),
                  static_cast<unsigned long long>(w.value("generation", 0ull)), state.c_str(),
                  static_cast<unsigned long long>(w.value("in_flight", 0ull)),
                  static_cast<unsigned long long>(w.value("requests", 0ull)), w.value("restarts", 0),
                  human_bytes(w.value("rss", 0ull)).c_str(), human_duration(w.value("cpu_seconds", 0.0)).c_str(),
                  w.value("pid", 0) > 0 ? human_duration(w.value("uptime_seconds", 0.0)).c_str() : "-");
    }
    std::string notes;
    // Why a worker is not serving yet: its readiness probe's last answer.
    for (auto& w : a["workers"])
      if (w.value("state", "") != "ready" && !w.value("probe", "").empty())
        notes += "  worker " + std::to_string(w.value("id", 0)) + " probe: " + w.value("probe", "");
    if (a.value("failing", false)) notes += "  FAILING (workers keep dying at start; requests get 503)";
    if (a.value("removed", false)) notes += "  removed from the config, draining";
    if (a.contains("deaths") && !a["deaths"].empty()) {
      notes += "  deaths:";
      for (auto& [k, v] : a["deaths"].items()) notes += " " + k + "=" + std::to_string(v.get<unsigned long long>());
    }
    if (!notes.empty()) std::printf("%-14s%s\n", a.value("name", "").c_str(), notes.c_str());
  }
}

std::string error_of(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"];
  return body;
}
}  // namespace

int main(int argc, char** argv) {
  std::string socket = "/run/corral/control.sock", command, config_file;
  std::vector<std::string> args;
  bool as_json = false, socket_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version") return std::printf("corralctl %s\n", CORRAL_VERSION) < 0;
    if (a == "-h" || a == "--help") return usage() == 2 ? 0 : 0;
    if (a == "--socket" && i + 1 < argc) {
      socket = argv[++i];
      socket_given = true;  // wins over -c's runtime_dir, whatever the order
    } else if (a == "-c" && i + 1 < argc) {
      // Only runtime_dir, read tolerantly: a config with errors is when status, stop and
      // reload (whose answer then names the errors) are needed most. For plan, CONFIG is
      // also the candidate.
      config_file = argv[++i];
      auto where = corral::conf::read_runtime_dir(config_file);
      if (!where.warning.empty()) std::fprintf(stderr, "corralctl: warning: %s\n", where.warning.c_str());
      if (!socket_given) socket = corral::supervisor::control_socket_path(where.dir);
    } else if (a == "--json") as_json = true;
    else if (a == "check" && command.empty()) return i + 1 < argc ? corral::supervisor::check_config(argv[i + 1]) : usage();
    else if ((a == "status" || a == "stop" || a == "reload" || a == "scale" || a == "advise" || a == "drain" ||
              a == "undrain" || a == "restart-proxy" || a == "plan" || a == "upgrade") &&
             command.empty())
      command = a;
    else if (!command.empty()) args.push_back(a);
    else return usage();
  }
  if (command.empty()) return usage();
  if (command == "advise") {
    auto parsed = corral::supervisor::ctl::parse_advise_args(args, as_json);
    if (!parsed) return 2;
    return corral::supervisor::ctl::run_advise(
        *parsed, [&socket](const std::string& m, const std::string& p, const std::string& req, std::string& out) {
          return call(socket, m, p, req, out);
        });
  }
  auto call_socket = [&socket](const std::string& m, const std::string& p, const std::string& req, std::string& out) {
    return call(socket, m, p, req, out);
  };
  if (command == "plan") {
    if (!args.empty()) return usage();
    return corral::supervisor::ctl::run_plan(config_file, as_json, call_socket);
  }
  std::string method = "POST", path = "/" + command, req_body;
  if (command == "status") method = "GET";
  if (command == "restart-proxy") path = "/proxy/restart";
  if (command == "reload" && !args.empty()) {
    if (args.size() != 2 || args[0] != "--plan-id" || args[1].empty()) return usage();
    req_body = json{{"plan_id", args[1]}}.dump();
  } else if (command == "scale") {
    if (args.size() != 2) return usage();
    char* end = nullptr;
    long n = std::strtol(args[1].c_str(), &end, 10);
    if (!end || *end || n < 1) return std::fprintf(stderr, "corralctl: N must be a positive number of workers\n"), 2;
    path = "/apps/" + args[0] + "/scale";
    req_body = json{{"workers", n}}.dump();
  } else if (!args.empty()) {
    return usage();
  }
  std::string body;
  int code = call(socket, method, path, req_body, body);
  if (code < 0) return 1;
  if (code >= 300) {
    std::fprintf(stderr, "corralctl: %s failed (%d): %s\n", command.c_str(), code, error_of(body).c_str());
    // A stale plan id: nothing changed, plan again.
    if (command == "reload" && code == 409) return corral::supervisor::ctl::kReloadPlanStale;
    return 1;
  }
  if (as_json) return std::printf("%s\n", body.c_str()) < 0;
  json s = json::parse(body, nullptr, false);
  if (s.is_discarded()) return std::fprintf(stderr, "corralctl: the supervisor's answer is not JSON\n"), 1;
  if (command == "stop") return std::puts("stopping") < 0;
  if (command == "restart-proxy") {
    std::printf("proxy replaced: pid %d -> pid %d in %.2fs; %llu idle connection(s) handed over, %llu finishing on the "
                "old proxy\n",
                s.value("old_pid", 0), s.value("new_pid", 0), s.value("seconds", 0.0),
                static_cast<unsigned long long>(s.value("handed_over", 0ull)),
                static_cast<unsigned long long>(s.value("kept", 0ull)));
    return 0;
  }
  if (command == "drain" || command == "undrain") {
    if (command == "undrain") return std::puts(s.value("changed", false) ? "ready again" : "was not draining") < 0;
    std::printf("%s: /readyz fails, keep-alive ends, the listeners keep serving (corralctl undrain to end it)\n",
                s.value("changed", false) ? "draining" : "already draining");
    return 0;
  }
  if (command == "scale") {
    std::printf("%s: %d -> %d workers\n", s.value("app", "").c_str(), s.value("before", 0), s.value("workers", 0));
    return 0;
  }
  if (command == "upgrade") {
    std::printf("upgraded in place: %s -> %s (pid %d", s.value("from", "?").c_str(), s.value("to", "?").c_str(),
                s.value("pid", 0));
    if (int rolled = s.value("rolled_workers", 0); rolled > 0) std::printf("; %d corral-worker process(es) rolled", rolled);
    const json proxy = s.value("proxy", json::object());
    if (proxy.value("replaced", false)) {
      std::printf("; proxy pid %d -> %d, %llu idle connection(s) handed over)\n", proxy.value("old_pid", 0),
                  proxy.value("new_pid", 0), static_cast<unsigned long long>(proxy.value("handed_over", 0ull)));
    } else {
      std::printf("; proxy pid %d kept: %s)\n", s.value("proxy_pid", 0), proxy.value("error", std::string("not replaced")).c_str());
    }
    return 0;
  }
  if (command == "reload") {
    const bool settled = s.value("settled", false);
    std::printf("reloaded (config generation %llu)%s\n", static_cast<unsigned long long>(s.value("generation", 0ull)),
                settled ? "" : "; some new workers are not ready yet, the previous ones keep serving");
    for (auto& c : s["changes"]) std::printf("  %s\n", c.get<std::string>().c_str());
    return settled ? 0 : 3;
  }
  print_table(s);
  return 0;
}
