#pragma once
// How many CPUs this process may really use: the CPU affinity mask, capped by a cgroup v2
// cpu.max quota (rounded up). A 1-CPU container on a 64-core host → 1.
#include <string>
#include <string_view>

namespace corral::conf {

/// Usable cores, at least 1. Reads /proc/self/cgroup and /sys/fs/cgroup/<path>/cpu.max for
/// the process's cgroup and each of its parents (the smallest quota wins). Any thread.
int usable_cores();

/// Testable core of usable_cores(): affinity count and the text of cpu.max ("max 100000",
/// "150000 100000"); returns max(1, min(affinity, ceil(quota/period))). A null, "max" or
/// malformed text means no quota.
int usable_cores_from(int affinity_count, const char* cpu_max_text);

/// The cgroup v2 path ("/system.slice/x.service") from the text of /proc/self/cgroup (the
/// "0::<path>" line); empty when the process is not in a cgroup v2 hierarchy.
std::string cgroup_v2_path(std::string_view proc_self_cgroup_text);

/// Gunicorn's rule: 2 × usable cores + 1.
inline int auto_workers(int cores) { return 2 * cores + 1; }

}  // namespace corral::conf
