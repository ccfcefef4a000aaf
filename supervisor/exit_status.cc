#include "supervisor/exit_status.h"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace corral::supervisor {

std::string describe_exit(int status, bool oom) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    std::string s = "killed by signal " + std::to_string(sig);
    if (abbrev) s += std::string(" (SIG") + abbrev + ")";
    if (WCOREDUMP(status)) s += " (core dumped)";
    if (sig == SIGKILL && oom) s += ", OOM kill (the cgroup's oom_kill counter rose)";
    return s;
  }
  return "unknown wait status " + std::to_string(status);
}

std::string describe_requests(const std::optional<std::vector<control::SlotRequestInfo>>& answer,
                              uint64_t last_in_flight, bool on_purpose) {
  if (!answer) {
    if (on_purpose || last_in_flight == 0) return "";
    return ", " + std::to_string(last_in_flight) + " request(s) in flight (answered 502/504 by the proxy)";
  }
  if (answer->empty()) return ", serving no request";
  std::string out = (on_purpose ? ", stopped with " : ", serving ") + std::to_string(answer->size()) +
                    (on_purpose ? " request(s) unfinished:" : " request(s):");
  char elapsed[32];
  for (size_t i = 0; i < answer->size(); ++i) {
    const auto& r = (*answer)[i];
    std::snprintf(elapsed, sizeof elapsed, "%.3fs", static_cast<double>(r.elapsed_ms) / 1000.0);
    out += (i ? "; rid=" : " rid=") + r.id;
    if (!r.trace_id.empty()) out += " trace=" + r.trace_id;
    out += " " + r.method + " " + r.path + " " + elapsed;
    if (r.state != "in_flight") out += " (" + r.state + ")";
  }
  return out;
}

OomEvidence::OomEvidence(std::string events_path) : path_(std::move(events_path)) { seen_ = read(); }

uint64_t OomEvidence::read() const {
  if (path_.empty()) return 0;
  std::ifstream in(path_);
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value)
    if (key == "oom_kill") return value;
  return 0;
}

bool OomEvidence::consume() {
  const uint64_t now = read();
  const bool rose = now > seen_;
  seen_ = now;
  return rose;
}

std::string OomEvidence::own_memory_events() {
  // cgroup v2: one line "0::/path".
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    std::string path = "/sys/fs/cgroup" + line.substr(3);
    if (path.back() != '/') path += '/';
    path += "memory.events";
    return ::access(path.c_str(), R_OK) == 0 ? path : std::string();
  }
  return {};
}

OomEvidence& oom_evidence() {
  static OomEvidence e;
  return e;
}

std::string format_uptime(std::chrono::milliseconds uptime) {
  auto ms = uptime.count();
  char buf[48];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%lld.%llds", static_cast<long long>(ms / 1000),
                  static_cast<long long>((ms % 1000) / 100));
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60'000),
                  static_cast<long long>((ms / 1000) % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3'600'000),
                  static_cast<long long>((ms / 60'000) % 60));
  }
  return buf;
}

}  // namespace corral::supervisor
