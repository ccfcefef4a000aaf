#pragma once
// How many CPUs this process may really use: the CPU affinity mask, capped by a cgroup v2
// cpu.max quota (rounded up). A 1-CPU container on a 64-core host → 1.
namespace corral::conf {

/// Usable cores, at least 1. Reads /proc/self/cgroup and /sys/fs/cgroup/<path>/cpu.max.
int usable_cores();

/// Testable core of usable_cores(): affinity count and the text of cpu.max ("max 100000",
/// "150000 100000"); returns max(1, min(affinity, ceil(quota/period))).
int usable_cores_from(int affinity_count, const char* cpu_max_text);

/// Gunicorn's rule: 2 × usable cores + 1.
inline int auto_workers(int cores) { return 2 * cores + 1; }

}  // namespace corral::conf
