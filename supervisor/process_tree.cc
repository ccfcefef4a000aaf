#include "supervisor/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>

#include "common/base/strings.h"
#include "supervisor/proc_stats.h"

namespace corral::supervisor {
namespace {

// Every numeric entry of /proc.
std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (auto n = parse_decimal(e->d_name)) out.push_back(static_cast<pid_t>(*n));
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::optional<ProcEntry> parse_proc_entry(pid_t pid, std::string_view text) {
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime
  //  stime cutime cstime priority nice num_threads itrealvalue starttime ..."
  const std::vector<std::string_view> f = proc_stat_fields(text, 20);  // field N is f[N - 3]
  if (f.size() < 20 || f[0].size() != 1) return std::nullopt;
  auto ppid = parse_decimal(f[1]), pgrp = parse_decimal(f[2]), session = parse_decimal(f[3]), start = parse_decimal(f[19]);
  if (!ppid || !pgrp || !session || !start) return std::nullopt;
  ProcEntry e;
  e.pid = pid;
  e.state = f[0][0];
  e.ppid = static_cast<pid_t>(*ppid);
  e.pgrp = static_cast<pid_t>(*pgrp);
  e.session = static_cast<pid_t>(*session);
  e.start_ticks = *start;
  return e;
}

std::optional<ProcEntry> read_proc_entry(pid_t pid) {
  std::string text;
  if (!read_proc_file("/proc/" + std::to_string(pid) + "/stat", text) || text.empty()) return std::nullopt;
  return parse_proc_entry(pid, text);
}

std::string proc_cmdline(pid_t pid, size_t max) {
  std::string text;
  if (!read_proc_file("/proc/" + std::to_string(pid) + "/cmdline", text, max + 1)) return {};
  while (!text.empty() && text.back() == '\0') text.pop_back();
  std::replace(text.begin(), text.end(), '\0', ' ');
  if (text.size() > max) text.resize(max);
  return text;
}

std::vector<pid_t> own_children() {
  std::vector<pid_t> out;
  const pid_t self = ::getpid();
  bool any_file = false;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) {
      if (!parse_decimal(e->d_name)) continue;
      std::string text;
      if (!read_proc_file(std::string("/proc/self/task/") + e->d_name + "/children", text)) continue;
      any_file = true;
      size_t at = 0;
      while (at < text.size()) {
        size_t end = text.find(' ', at);
        if (end == std::string::npos) end = text.size();
        if (auto n = parse_decimal(text.substr(at, end - at))) out.push_back(static_cast<pid_t>(*n));
        at = end + 1;
      }
    }
    ::closedir(d);
  }
  if (any_file) return out;
  // Kernels built without CONFIG_PROC_CHILDREN: the long way.
  for (pid_t p : all_pids())
    if (auto e = read_proc_entry(p); e && e->ppid == self) out.push_back(p);
  return out;
}

std::vector<ProcEntry> descendants(pid_t root) {
  std::multimap<pid_t, ProcEntry> children;  // ppid → entry
  for (pid_t p : all_pids())
    if (auto e = read_proc_entry(p); e && e->state != 'Z') children.emplace(e->ppid, *e);
  std::vector<ProcEntry> out;
  std::vector<pid_t> todo{root};
  while (!todo.empty() && out.size() < 4096) {
    pid_t parent = todo.back();
    todo.pop_back();
    auto [b, e] = children.equal_range(parent);
    for (auto it = b; it != e; ++it) {
      out.push_back(it->second);
      todo.push_back(it->second.pid);
    }
  }
  return out;
}

bool signal_if_same(pid_t pid, unsigned long long start_ticks, int sig) {
  if (pid <= 0) return false;
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0 && errno == ESRCH) return false;
  // With a pidfd, the process it names cannot change: check that one, signal that one.
  auto e = read_proc_entry(pid);
  const bool same = e && e->start_ticks == start_ticks && e->state != 'Z';
  bool sent = false;
  if (same) {
    sent = fd >= 0 ? ::syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) == 0 : ::kill(pid, sig) == 0;
  }
  if (fd >= 0) ::close(fd);
  return sent;
}

std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> out;
  for (pid_t p : all_pids())
    if (auto e = read_proc_entry(p); e && e->pgrp == pgid && e->state != 'Z') out.push_back(p);
  return out;
}

ino_t socket_inode(int fd) {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  return st.st_ino;
}

Holding holds_socket(pid_t pid, ino_t inode) {
  if (inode == 0) return Holding::No;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  const std::string want = "socket:[" + std::to_string(inode) + "]";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return errno == ENOENT || errno == ESRCH ? Holding::No : Holding::Unknown;
  Holding found = Holding::No;
  char link[64];
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    ssize_t n = ::readlinkat(::dirfd(d), e->d_name, link, sizeof link);
    if (n < 0 && (errno == EACCES || errno == EPERM)) found = Holding::Unknown;
    if (n > 0 && static_cast<size_t>(n) == want.size() && want.compare(0, want.size(), link, static_cast<size_t>(n)) == 0) {
      found = Holding::Yes;
      break;
    }
  }
  ::closedir(d);
  return found;
}

}  // namespace corral::supervisor
