#pragma once
// Resource usage of a worker and its children, from /proc: proportional set size (PSS, from
// /proc/PID/smaps_rollup, so pages shared between workers count once, split between them)
// and CPU time, summed over the worker's process group. Stateless; thread-safe.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace corral::supervisor {

/// The fields of /proc/PID/stat corral uses.
struct ProcStat {
  pid_t pgrp = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
};

/// Parses the text of /proc/PID/stat (the command may contain spaces and parentheses).
/// nullopt when malformed. Pure.
std::optional<ProcStat> parse_proc_stat(std::string_view text);
/// The "Pss:" value of /proc/PID/smaps_rollup in bytes; nullopt when absent. Pure.
std::optional<uint64_t> parse_pss_bytes(std::string_view smaps_rollup);

struct GroupUsage {
  uint64_t pss_bytes = 0;
  double cpu_seconds = 0;
  int processes = 0;
};

/// Sums PSS and CPU over every process whose process group is `pgid` (the worker and what
/// it forked). Processes that vanish while being read are skipped.
GroupUsage group_usage(pid_t pgid);

}  // namespace corral::supervisor
