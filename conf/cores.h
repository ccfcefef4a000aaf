#pragma once
// How many CPUs this process may really use: the CPU affinity mask, capped by a cgroup CPU
// quota (rounded up): cgroup v2 cpu.max, or cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us.
// A 1-CPU container on a 64-core host → 1 (a Kubernetes CPU limit of "1", docker --cpus=1).
#include <string>
#include <string_view>

namespace corral::conf {

/// Usable cores, at least 1. Reads /proc/self/cgroup, then /sys/fs/cgroup/<path>/cpu.max
/// (v2) and /sys/fs/cgroup/{cpu,cpuacct|cpu}/<path>/cpu.cfs_quota_us and cpu.cfs_period_us
/// (v1) for the process's cgroup and each of its parents (the smallest quota wins; inside a
/// container the mount's root is the container's own cgroup). Any thread.
int usable_cores();

/// Testable core of usable_cores(): affinity count and the text of cpu.max ("max 100000",
/// "150000 100000"); returns max(1, min(affinity, ceil(quota/period))). A null, "max" or
/// malformed text means no quota.
int usable_cores_from(int affinity_count, const char* cpu_max_text);

/// The cgroup v2 path ("/system.slice/x.service") from the text of /proc/self/cgroup (the
/// "0::<path>" line); empty when the process is not in a cgroup v2 hierarchy.
std::string cgroup_v2_path(std::string_view proc_self_cgroup_text);

/// The cgroup v1 path of the cpu controller ("/docker/abc") from the text of
/// /proc/self/cgroup (the "N:...cpu...:<path>" line); empty when there is none.
std::string cgroup_v1_cpu_path(std::string_view proc_self_cgroup_text);

/// cgroup v1: max(1, min(affinity, ceil(quota/period))) from the texts of cpu.cfs_quota_us
/// ("-1" = no quota) and cpu.cfs_period_us; a null or malformed text means no quota.
int usable_cores_from_v1(int affinity_count, const char* cfs_quota_us_text, const char* cfs_period_us_text);

/// Gunicorn's rule: 2 × usable cores + 1.
inline int auto_workers(int cores) { return 2 * cores + 1; }

}  // namespace corral::conf
