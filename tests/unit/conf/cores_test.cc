#include "conf/cores.h"

#include <gtest/gtest.h>

namespace corral::conf {
namespace {

TEST(UsableCores, NoQuotaKeepsAffinity) {
  EXPECT_EQ(usable_cores_from(8, nullptr), 8);
  EXPECT_EQ(usable_cores_from(8, "max 100000\n"), 8);
  EXPECT_EQ(usable_cores_from(8, ""), 8);
}

TEST(UsableCores, QuotaRoundsUp) {
  EXPECT_EQ(usable_cores_from(64, "150000 100000\n"), 2);
  EXPECT_EQ(usable_cores_from(64, "200000 100000"), 2);
  EXPECT_EQ(usable_cores_from(64, "250000 100000"), 3);
  EXPECT_EQ(usable_cores_from(64, "50000 100000"), 1);
}

TEST(UsableCores, OneCpuQuotaOn64Cores) {
  int cores = usable_cores_from(64, "100000 100000\n");
  EXPECT_EQ(cores, 1);
  EXPECT_EQ(auto_workers(cores), 3);
}

TEST(UsableCores, AffinityBelowQuotaWins) {
  EXPECT_EQ(usable_cores_from(2, "800000 100000"), 2);
}

TEST(UsableCores, MalformedTextMeansNoQuota) {
  EXPECT_EQ(usable_cores_from(4, "banana"), 4);
  EXPECT_EQ(usable_cores_from(4, "100000 0"), 4);
  EXPECT_EQ(usable_cores_from(4, "100000 x"), 4);
}

TEST(UsableCores, NeverBelowOne) {
  EXPECT_EQ(usable_cores_from(0, nullptr), 1);
  EXPECT_EQ(usable_cores_from(16, "0 100000"), 1);
}

TEST(UsableCores, LiveValueIsPlausible) {
  int cores = usable_cores();
  EXPECT_GE(cores, 1);
  EXPECT_LE(cores, 4096);
}

TEST(CgroupPath, FindsTheV2Line) {
  EXPECT_EQ(cgroup_v2_path("0::/system.slice/corral.service\n"), "/system.slice/corral.service");
  EXPECT_EQ(cgroup_v2_path("12:cpu,cpuacct:/docker/abc\n0::/\n"), "/");
  EXPECT_EQ(cgroup_v2_path("12:cpu,cpuacct:/docker/abc\n"), "");
  EXPECT_EQ(cgroup_v2_path(""), "");
}

TEST(CgroupPath, FindsTheV1CpuController) {
  const char* docker_v1 =
      "12:pids:/docker/abc\n"
      "5:cpuacct,cpu:/docker/abc\n"
      "4:cpuset:/docker/abc\n";
  EXPECT_EQ(cgroup_v1_cpu_path(docker_v1), "/docker/abc");
  EXPECT_EQ(cgroup_v1_cpu_path("3:cpu,cpuacct:/kubepods/burstable/pod1/c2\n0::/\n"), "/kubepods/burstable/pod1/c2");
  // cpuset and cpuacct alone are not the cpu controller; v2 alone has none.
  EXPECT_EQ(cgroup_v1_cpu_path("4:cpuset:/x\n6:cpuacct:/y\n"), "");
  EXPECT_EQ(cgroup_v1_cpu_path("0::/system.slice/corral.service\n"), "");
  EXPECT_EQ(cgroup_v1_cpu_path(""), "");
}

TEST(UsableCores, V1QuotaAndPeriod) {
  // docker --cpus=1.5 and a Kubernetes limit of 2 on a 64-core host.
  EXPECT_EQ(usable_cores_from_v1(64, "150000\n", "100000\n"), 2);
  EXPECT_EQ(usable_cores_from_v1(64, "200000", "100000"), 2);
  EXPECT_EQ(auto_workers(usable_cores_from_v1(64, "100000\n", "100000\n")), 3);
  // -1 is no quota; affinity below the quota wins; never below one.
  EXPECT_EQ(usable_cores_from_v1(8, "-1\n", "100000\n"), 8);
  EXPECT_EQ(usable_cores_from_v1(2, "800000", "100000"), 2);
  EXPECT_EQ(usable_cores_from_v1(16, "1000", "100000"), 1);
  // Unreadable or malformed: no quota.
  EXPECT_EQ(usable_cores_from_v1(4, nullptr, "100000"), 4);
  EXPECT_EQ(usable_cores_from_v1(4, "100000", "0"), 4);
  EXPECT_EQ(usable_cores_from_v1(4, "lots", "100000"), 4);
}

TEST(AutoWorkers, GunicornRule) {
  EXPECT_EQ(auto_workers(1), 3);
  EXPECT_EQ(auto_workers(4), 9);
}

}  // namespace
}  // namespace corral::conf
