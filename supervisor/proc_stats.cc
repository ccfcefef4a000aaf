#include "supervisor/proc_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/base/strings.h"

namespace corral::supervisor {
bool read_proc_file(const std::string& path, std::string& out, size_t max) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() >= max) break;
  }
  ::close(fd);
  return true;
}

std::vector<std::string_view> proc_stat_fields(std::string_view text, size_t count) {
  std::vector<std::string_view> fields;
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return fields;
  std::string_view rest = text.substr(close + 1);
  size_t i = 0;
  while (i < rest.size() && fields.size() < count) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t j = i;
    while (j < rest.size() && rest[j] != ' ' && rest[j] != '\n') ++j;
    if (j > i) fields.push_back(rest.substr(i, j - i));
    i = j + 1;
  }
  return fields;
}

namespace {
bool read_small_file(const std::string& path, std::string& out) { return read_proc_file(path, out) && !out.empty(); }
}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ..."
  const std::vector<std::string_view> fields = proc_stat_fields(text, 16);
  // fields[0] = state (field 3), so field N is fields[N - 3].
  if (fields.size() < 13) return std::nullopt;
  auto pgrp = parse_decimal(fields[2]);
  auto utime = parse_decimal(fields[11]);
  auto stime = parse_decimal(fields[12]);
  if (!pgrp || !utime || !stime) return std::nullopt;
  return ProcStat{static_cast<pid_t>(*pgrp), *utime, *stime, parse_decimal(fields[13]).value_or(0),
                  fields.size() > 14 ? parse_decimal(fields[14]).value_or(0) : 0};
}

namespace {
// The "Name:   123 kB" line's value in bytes; nullopt when absent or malformed.
std::optional<uint64_t> kib_field(std::string_view text, std::string_view name) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.size() > name.size() && line.substr(0, name.size()) == name && line[name.size()] == ':') {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      size_t end = v.find(' ');
      auto kib = parse_decimal(v.substr(0, end));
      if (!kib) return std::nullopt;
      return *kib * 1024;
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return std::nullopt;
}
}  // namespace

std::optional<uint64_t> parse_pss_bytes(std::string_view text) { return kib_field(text, "Pss"); }

std::optional<uint64_t> parse_schedstat_wait_ns(std::string_view text) {
  size_t a = text.find(' ');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = text.find_first_of(" \n", a + 1);
  return parse_decimal(text.substr(a + 1, b == std::string_view::npos ? std::string_view::npos : b - a - 1));
}

std::optional<HostMemory> parse_meminfo(std::string_view text) {
  auto total = kib_field(text, "MemTotal");
  auto available = kib_field(text, "MemAvailable");
  if (!total || !available) return std::nullopt;
  return HostMemory{*available, *total};
}

HostMemory host_memory() {
  std::string text;
  if (!read_small_file("/proc/meminfo", text)) return {};
  return parse_meminfo(text).value_or(HostMemory{});
}

GroupUsage group_usage(pid_t pgid, bool run_queue) {
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
    auto pid = parse_decimal(e->d_name);
    if (!pid) continue;
    std::string base = std::string("/proc/") + e->d_name;
    if (!read_small_file(base + "/stat", text)) continue;
    auto st = parse_proc_stat(text);
    if (!st || st->pgrp != pgid) continue;
    ++u.processes;
    // A child counts once: in the group while it runs, in its parent's cutime once reaped.
    u.cpu_seconds += static_cast<double>(st->utime_ticks + st->stime_ticks + st->cutime_ticks + st->cstime_ticks) /
                     static_cast<double>(ticks);
    if (read_small_file(base + "/smaps_rollup", text))
      if (auto pss = parse_pss_bytes(text)) u.pss_bytes += *pss;
    if (DIR* tasks = run_queue ? ::opendir((base + "/task").c_str()) : nullptr) {
      while (dirent* t = ::readdir(tasks)) {
        if (!parse_decimal(t->d_name)) continue;
        if (!read_small_file(base + "/task/" + t->d_name + "/schedstat", text)) continue;
        if (auto ns = parse_schedstat_wait_ns(text)) u.cpu_wait_seconds += static_cast<double>(*ns) / 1e9;
      }
      ::closedir(tasks);
    }
  }
  ::closedir(d);
  return u;
}

}  // namespace corral::supervisor
