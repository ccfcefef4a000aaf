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

int usable_cores() {
  int cores = affinity_count();
  std::string path = cgroup_v2_path(read_small_file("/proc/self/cgroup"));
  if (path.empty() || path.front() != '/') return cores;
  // A quota on any ancestor limits this cgroup too: check each level up to the root.
  for (;;) {
    std::string dir = "/sys/fs/cgroup" + (path == "/" ? std::string() : path);
    std::string cpu_max = read_small_file(dir + "/cpu.max");
    if (!cpu_max.empty()) cores = usable_cores_from(cores, cpu_max.c_str());
    if (path == "/") break;
    auto slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return cores;
}

}  // namespace corral::conf
