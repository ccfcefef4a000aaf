#include "conf/cores.h"

#include <sched.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/base/strings.h"

namespace corral::conf {
namespace {

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

int affinity_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

int usable_cores_from(int affinity_count_value, const char* cpu_max_text) {
  int cores = std::max(1, affinity_count_value);
  if (cpu_max_text == nullptr) return cores;
  std::string_view text = trim_ows(cpu_max_text);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  auto space = text.find(' ');
  if (space == std::string_view::npos) return cores;
  auto quota = parse_decimal(text.substr(0, space));  // "max" → nullopt → no cap
  auto period = parse_decimal(trim_ows(text.substr(space + 1)));
  if (!quota || !period || *period == 0) return cores;
  uint64_t quota_cores = (*quota + *period - 1) / *period;  // ceil
  if (quota_cores < static_cast<uint64_t>(cores)) cores = static_cast<int>(quota_cores);
  return std::max(1, cores);
}

std::string cgroup_v2_path(std::string_view text) {
  for (auto line : split(text, '\n')) {
    if (line.substr(0, 3) == "0::") {
      auto path = line.substr(3);
      while (!path.empty() && (path.back() == '\r' || path.back() == ' ')) path.remove_suffix(1);
      return std::string(path);
    }
  }
  return {};
}

std::string cgroup_v1_cpu_path(std::string_view text) {
  for (auto line : split(text, '\n')) {
    // "hierarchy-id:controller,controller:path"
    const size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    bool cpu = false;
    for (auto c : split(line.substr(first + 1, second - first - 1), ',')) cpu = cpu || c == "cpu";
    if (!cpu) continue;
    auto path = line.substr(second + 1);
    while (!path.empty() && (path.back() == '\r' || path.back() == ' ')) path.remove_suffix(1);
    return std::string(path);
  }
  return {};
}

int usable_cores_from_v1(int affinity_count_value, const char* quota_text, const char* period_text) {
  if (quota_text == nullptr || period_text == nullptr) return std::max(1, affinity_count_value);
  // The same rule as cpu.max: "-1" does not parse as a decimal, so it is no quota, like "max".
  auto line = [](std::string_view t) {
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
    return std::string(trim_ows(t));
  };
  const std::string cpu_max = line(quota_text) + " " + line(period_text);
  return usable_cores_from(affinity_count_value, cpu_max.c_str());
}

namespace {

// Calls read(dir) for `path` under `root` and each of its parents up to root itself.
template <typename F>
void each_level(const std::string& root, std::string path, F read) {
  if (path.empty() || path.front() != '/') return;
  // A quota on any ancestor limits this cgroup too: check each level up to the root.
  for (;;) {
    read(root + (path == "/" ? std::string() : path));
    if (path == "/") break;
    auto slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
}

}  // namespace

int usable_cores() {
  int cores = affinity_count();
  const std::string self = read_small_file("/proc/self/cgroup");
  each_level("/sys/fs/cgroup", cgroup_v2_path(self), [&](const std::string& dir) {
    std::string cpu_max = read_small_file(dir + "/cpu.max");
    if (!cpu_max.empty()) cores = usable_cores_from(cores, cpu_max.c_str());
  });
  // cgroup v1 (and hybrid hosts, whose cpu controller is a v1 one): the cpu controller's
  // mount, under the names distributions give it.
  const std::string v1 = cgroup_v1_cpu_path(self);
  for (const char* mount : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct,cpu"}) {
    each_level(mount, v1, [&](const std::string& dir) {
      std::string quota = read_small_file(dir + "/cpu.cfs_quota_us");
      std::string period = read_small_file(dir + "/cpu.cfs_period_us");
      if (!quota.empty() && !period.empty()) cores = usable_cores_from_v1(cores, quota.c_str(), period.c_str());
    });
  }
  return cores;
}

}  // namespace corral::conf
