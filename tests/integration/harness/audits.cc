#include "tests/integration/harness/audits.h"

#include <dirent.h>

#include <cstdlib>
#include <sstream>

#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {

bool proc_info(pid_t pid, ProcInfo& out) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
  //  stime cutime cstime priority nice threads itrealvalue starttime ..."; comm may hold spaces.
  size_t rp = stat.rfind(')');
  if (rp == std::string::npos) return false;
  std::istringstream in(stat.substr(rp + 2));
  std::string field;
  std::vector<std::string> f;
  while (in >> field) f.push_back(field);
  if (f.size() < 20) return false;
  out.pid = pid;
  out.state = f[0].empty() ? '?' : f[0][0];
  out.ppid = std::atoi(f[1].c_str());
  out.pgrp = std::atoi(f[2].c_str());
  out.start_ticks = std::strtoull(f[19].c_str(), nullptr, 10);
  out.cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (auto& c : out.cmdline)
    if (c == '\0') c = ' ';
  return true;
}

long rss_kib(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("\nVmRSS:");
  return at == std::string::npos ? -1 : std::atol(status.c_str() + at + 7);
}

bool environ_contains(pid_t pid, const std::string& needle) {
  std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
  size_t start = 0;
  while (start < env.size()) {
    size_t end = env.find('\0', start);
    if (env.compare(start, end == std::string::npos ? std::string::npos : end - start, needle) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

std::vector<ProcInfo> leftover_processes(pid_t pgrp, const std::string& marker, const std::set<pid_t>& seen,
                                         unsigned long long not_before_ticks) {
  std::vector<ProcInfo> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  const std::string needle = "CORRAL_ITEST_RUN=" + marker;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    ProcInfo info;
    if (!proc_info(static_cast<pid_t>(pid), info) || info.state == 'Z') continue;
    bool mine = (pgrp > 0 && info.pgrp == pgrp) || environ_contains(info.pid, needle) ||
                (seen.count(info.pid) != 0 && info.start_ticks >= not_before_ticks &&
                 info.cmdline.find("corral") != std::string::npos);
    if (mine) out.push_back(info);
  }
  ::closedir(d);
  return out;
}

std::vector<std::string> grep_lines(const std::string& text, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

std::vector<std::string> error_lines(const std::string& log, const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    // corral's own lines: "<timestamp> <level> <program>[pid] ..."; app output lines are
    // prefixed by the app tag and do not put a level in the second field.
    size_t sp = line.find(' ');
    bool is_error = sp != std::string::npos && line.compare(sp + 1, 6, "error ") == 0;
    bool is_alert = line.find("alert") != std::string::npos;
    if (!is_error && !is_alert) continue;
    bool ok = false;
    for (auto& a : allowed)
      if (line.find(a) != std::string::npos) ok = true;
    if (!ok) out.push_back(line);
  }
  return out;
}

std::string tail_lines(const std::string& text, size_t n) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  size_t count = 0;
  while (pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    if (++count == n) return text.substr(nl + 1);
    pos = nl;
  }
  return text;
}

}  // namespace corral::itest
