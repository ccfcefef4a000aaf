#pragma once
// What /proc says about the processes around the supervisor: its children, who holds a
// socket, a process's descendants. Used for the leftovers of workers (strays.h) and for a
// worker that closed its listening socket (AppPool). Stateless; thread-safe; every reader
// tolerates processes that vanish while being read.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::supervisor {

/// The fields of /proc/PID/stat used to follow processes.
struct ProcEntry {
  pid_t pid = 0;
  char state = '?';  ///< 'Z' = zombie
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  unsigned long long start_ticks = 0;  ///< start time since boot (pid reuse check)
};

/// Parses the text of /proc/PID/stat (the command may hold spaces and parentheses). Pure.
std::optional<ProcEntry> parse_proc_entry(pid_t pid, std::string_view text);
/// Reads /proc/PID/stat; nullopt when the process is gone.
std::optional<ProcEntry> read_proc_entry(pid_t pid);
/// /proc/PID/cmdline with spaces for NULs, cut at `max` bytes ("" when gone or a kernel thread).
std::string proc_cmdline(pid_t pid, size_t max = 120);

/// The calling process's children (every thread's /proc/self/task/TID/children; without
/// that file, a scan of /proc for ppid = getpid()). Zombies included.
std::vector<pid_t> own_children();
/// Every live process whose parent chain leads to `root` (not root itself), parents first.
std::vector<ProcEntry> descendants(pid_t root);
/// Every process in process group `pgid`.
std::vector<pid_t> group_members(pid_t pgid);

/// Sends `sig` to `pid` only while it is the process that started at `start_ticks` (its pid
/// may have been reused since it was seen): through a pidfd, so the check and the signal
/// reach the same process; on kernels without pidfd_open (before 5.3), checked right before
/// kill(). True when sent.
bool signal_if_same(pid_t pid, unsigned long long start_ticks, int sig);

/// The sockfs inode of a socket fd (what /proc/PID/fd shows as "socket:[INODE]"); 0 on error.
ino_t socket_inode(int fd);
/// Whether a process holds a socket, as far as /proc lets us see.
enum class Holding {
  Yes,
  No,       ///< none of its fds is the socket, or the process is gone
  Unknown,  ///< its fds cannot be read (another user and no CAP_SYS_PTRACE, not dumpable)
};
/// Whether process `pid` has an fd open on the socket with sockfs inode `inode` (No when
/// inode is 0).
Holding holds_socket(pid_t pid, ino_t inode);

}  // namespace corral::supervisor
