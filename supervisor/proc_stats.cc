#include "supervisor/proc_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace corral::supervisor {
namespace {

bool read_small_file(const std::string& path, std::string& out) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) break;
  }
  ::close(fd);
  return !out.empty();
}

std::optional<uint64_t> to_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ..."
  auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(close + 1);
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < rest.size() && fields.size() < 16) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j > i) fields.push_back(rest.substr(i, j - i));
    i = j + 1;
  }
  // fields[0] = state (field 3), so field N is fields[N - 3].
  if (fields.size() < 13) return std::nullopt;
  auto pgrp = to_u64(fields[2]);
  auto utime = to_u64(fields[11]);
  auto stime = to_u64(fields[12]);
  if (!pgrp || !utime || !stime) return std::nullopt;
  return ProcStat{static_cast<pid_t>(*pgrp), *utime, *stime};
}

std::optional<uint64_t> parse_pss_bytes(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.substr(0, 4) == "Pss:") {
      std::string_view v = line.substr(4);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      size_t end = v.find(' ');
      auto kib = to_u64(v.substr(0, end));
      if (!kib) return std::nullopt;
      return *kib * 1024;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return std::nullopt;
}

GroupUsage group_usage(pid_t pgid) {
  GroupUsage u;
  if (pgid <= 0) return u;
  static const long ticks = [] {
    long t = ::sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
  }();
  DIR* d = ::opendir("/proc");
  if (!d) return u;
  std::string text;
  while (dirent* e = ::readdir(d)) {
    auto pid = to_u64(e->d_name);
    if (!pid) continue;
    std::string base = std::string("/proc/") + e->d_name;
    if (!read_small_file(base + "/stat", text)) continue;
    auto st = parse_proc_stat(text);
    if (!st || st->pgrp != pgid) continue;
    ++u.processes;
    u.cpu_seconds += static_cast<double>(st->utime_ticks + st->stime_ticks) / static_cast<double>(ticks);
    if (read_small_file(base + "/smaps_rollup", text))
      if (auto pss = parse_pss_bytes(text)) u.pss_bytes += *pss;
  }
  ::closedir(d);
  return u;
}

}  // namespace corral::supervisor
