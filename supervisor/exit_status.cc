#include "supervisor/exit_status.h"

#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace corral::supervisor {

std::string describe_exit(int status, bool we_sent_kill) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    std::string s = "killed by signal " + std::to_string(sig);
    if (abbrev) s += std::string(" (SIG") + abbrev + ")";
    if (WCOREDUMP(status)) s += " (core dumped)";
    if (sig == SIGKILL && !we_sent_kill) s += ", likely OOM kill";
    return s;
  }
  return "unknown wait status " + std::to_string(status);
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
