// corralctl: talks HTTP+JSON to the supervisor's control.sock.
//   corralctl [--socket PATH | -c CONFIG] status [--json]
//   corralctl [--socket PATH | -c CONFIG] stop
//   corralctl check CONFIG
//   corralctl --version
#include <unistd.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "common/net/socket.h"
#include "conf/loader.h"
#include "supervisor/check.h"
#include "supervisor/listeners.h"

namespace {
using nlohmann::json;

int usage() {
  std::fputs("usage: corralctl [--socket PATH | -c CONFIG] status [--json]\n"
             "       corralctl [--socket PATH | -c CONFIG] stop\n"
             "       corralctl check CONFIG\n"
             "       corralctl --version\n", stderr);
  return 2;
}

// One request, one response (the server closes). Returns the status code, or -1 with a
// message on stderr when the supervisor cannot be reached.
int call(const std::string& socket, const std::string& method, const std::string& path, std::string& body) {
  auto fd = corral::net::connect_unix_blocking(socket);
  if (!fd) {
    std::fprintf(stderr, "corralctl: cannot reach the supervisor at %s: %s (is corral-supervisor running?)\n",
                 socket.c_str(), fd.error().message().c_str());
    return -1;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: corral\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  if (!corral::net::write_all(fd->get(), req)) return std::fprintf(stderr, "corralctl: write failed\n"), -1;
  std::string resp;
  char buf[16384];
  for (ssize_t n; (n = ::read(fd->get(), buf, sizeof buf)) != 0;) {
    if (n < 0) return std::fprintf(stderr, "corralctl: read failed\n"), -1;
    resp.append(buf, static_cast<size_t>(n));
  }
  auto end = resp.find("\r\n\r\n");
  if (resp.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos || resp.size() < 12)
    return std::fprintf(stderr, "corralctl: malformed response from %s\n", socket.c_str()), -1;
  body = resp.substr(end + 4);
  return std::atoi(resp.c_str() + 9);
}

void print_table(const json& s) {
  std::printf("corral-supervisor %s  pid %d  %s  config %s\n", s.value("version", "?").c_str(), s.value("pid", 0),
              s.value("state", "?").c_str(), s.value("config", "?").c_str());
  for (auto& l : s["listeners"])
    std::printf("listener %s -> %s\n", l.value("address", "").c_str(), l.value("bound", "").c_str());
  auto& p = s["proxy"];
  std::printf("proxy pid %d  restarts %d\n\n", p.value("pid", 0), p.value("restarts", 0));
  std::printf("%-16s %4s %8s %5s %-9s %8s  %s\n", "APP", "SLOT", "PID", "GEN", "STATE", "RESTARTS", "SOCKET");
  for (auto& a : s["apps"])
    for (auto& w : a["workers"])
      std::printf("%-16s %4d %8d %5llu %-9s %8d  %s\n", a.value("name", "").c_str(), w.value("slot", 0),
                  w.value("pid", 0), static_cast<unsigned long long>(w.value("generation", 0ull)),
                  w.value("state", "").c_str(), w.value("restarts", 0), w.value("socket", "").c_str());
}
}  // namespace

int main(int argc, char** argv) {
  std::string socket = "/run/corral/control.sock", command;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--version") return std::printf("corralctl %s\n", CORRAL_VERSION) < 0;
    if (a == "--socket" && i + 1 < argc) socket = argv[++i];
    else if (a == "-c" && i + 1 < argc) {
      auto cfg = corral::conf::load_file(argv[++i]);
      if (!cfg) return corral::supervisor::check_config(argv[i]);
      socket = corral::supervisor::control_socket_path(cfg->supervisor.runtime_dir);
    } else if (a == "--json") as_json = true;
    else if (a == "check" && command.empty()) return i + 1 < argc ? corral::supervisor::check_config(argv[i + 1]) : usage();
    else if ((a == "status" || a == "stop") && command.empty()) command = a;
    else return usage();
  }
  if (command.empty()) return usage();
  std::string body;
  int code = call(socket, command == "status" ? "GET" : "POST", "/" + command, body);
  if (code < 0) return 1;
  if (code >= 300) return std::fprintf(stderr, "corralctl: %s failed (%d): %s\n", command.c_str(), code, body.c_str()), 1;
  if (command == "stop") return std::puts("stopping") < 0;
  if (as_json) return std::printf("%s\n", body.c_str()) < 0;
  json s = json::parse(body, nullptr, false);
  if (s.is_discarded()) return std::fprintf(stderr, "corralctl: status is not JSON\n"), 1;
  print_table(s);
  return 0;
}
