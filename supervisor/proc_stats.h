#pragma once
// Resource usage of a worker and its children, from /proc: proportional set size (PSS, from
// /proc/PID/smaps_rollup, so pages shared between workers count once, split between them)
// and CPU time, summed over the worker's process group; and the host's memory
// (/proc/meminfo). Stateless; thread-safe.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace corral::supervisor {

/// The fields of /proc/PID/stat corral uses.
struct ProcStat {
  pid_t pgrp = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t cutime_ticks = 0;  ///< children it waited for (a CGI program run per request)
  uint64_t cstime_ticks = 0;
};

/// Reads a /proc file (at most about `max` bytes) into `out`; false when it cannot be opened.
bool read_proc_file(const std::string& path, std::string& out, size_t max = 1 << 20);
/// The space-separated fields of a /proc/PID/stat text after the command "(comm)", which may
/// hold spaces and parentheses: [0] is the state (field 3), so field N is [N - 3]; at most
/// `count`. Pure.
std::vector<std::string_view> proc_stat_fields(std::string_view text, size_t count);

/// Parses the text of /proc/PID/stat (the command may contain spaces and parentheses).
/// nullopt when malformed. Pure.
std::optional<ProcStat> parse_proc_stat(std::string_view text);
/// The "Pss:" value of /proc/PID/smaps_rollup in bytes; nullopt when absent. Pure.
std::optional<uint64_t> parse_pss_bytes(std::string_view smaps_rollup);

/// The "time waiting on a run queue" of /proc/PID/task/TID/schedstat ("run_ns wait_ns
/// slices") in nanoseconds; nullopt when malformed. Pure.
std::optional<uint64_t> parse_schedstat_wait_ns(std::string_view text);

struct GroupUsage {
  uint64_t pss_bytes = 0;
  double cpu_seconds = 0;  ///< of the processes, and of the children they already waited for
  /// How long their threads were runnable but waited for a core (run queue): CPU the
  /// processes wanted and the machine was busy elsewhere. Running processes only.
  double cpu_wait_seconds = 0;
  int processes = 0;
};

/// Sums PSS and CPU over every process whose process group is `pgid` (the worker and what
/// it forked). Processes that vanish while being read are skipped. run_queue: also read
/// every thread's schedstat for cpu_wait_seconds (one more file per thread).
GroupUsage group_usage(pid_t pgid, bool run_queue = true);

/// MemAvailable and MemTotal of /proc/meminfo, in bytes.
struct HostMemory {
  uint64_t available_bytes = 0;
  uint64_t total_bytes = 0;
};
/// Parses the text of /proc/meminfo; nullopt when MemTotal or MemAvailable is missing. Pure.
std::optional<HostMemory> parse_meminfo(std::string_view text);
/// The host's memory now (zeros when /proc/meminfo cannot be read).
HostMemory host_memory();

}  // namespace corral::supervisor
