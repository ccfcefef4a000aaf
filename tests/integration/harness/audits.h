#pragma once
// Audits run after every integration test (and helpers the tests use directly): leftover
// processes of a run, error lines in the log, log tails for failure reports.
//
// Thread-safe (reads /proc and strings only).
#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

namespace corral::itest {

/// What /proc says about one process.
struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  char state = '?';                ///< 'Z' = zombie
  unsigned long long start_ticks = 0;  ///< start time in clock ticks since boot
  std::string cmdline;             ///< NULs replaced by spaces
};

/// Reads /proc/PID; false when the process does not exist.
bool proc_info(pid_t pid, ProcInfo& out);
/// VmRSS of `pid` in KiB, from /proc/PID/status; -1 when the process does not exist.
long rss_kib(pid_t pid);
/// True when /proc/PID/environ holds `needle` (e.g. "CORRAL_ITEST_RUN=/tmp/crl-x").
bool environ_contains(pid_t pid, const std::string& needle);

/// Live (non-zombie) processes of one run: members of process group `pgrp`, processes whose
/// environment holds CORRAL_ITEST_RUN=`marker`, and `seen` pids that are still corral
/// processes started no earlier than `not_before_ticks` (guards against pid reuse).
std::vector<ProcInfo> leftover_processes(pid_t pgrp, const std::string& marker, const std::set<pid_t>& seen,
                                         unsigned long long not_before_ticks);

/// Lines of `log` at level error (" error " after the timestamp) or containing "alert",
/// except those containing one of `allowed`.
std::vector<std::string> error_lines(const std::string& log, const std::vector<std::string>& allowed);

/// The last `n` lines of `text`.
std::string tail_lines(const std::string& text, size_t n);

/// Lines of `text` that contain `needle`.
std::vector<std::string> grep_lines(const std::string& text, const std::string& needle);

}  // namespace corral::itest
