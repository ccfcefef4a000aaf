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

TEST(AutoWorkers, GunicornRule) {
  EXPECT_EQ(auto_workers(1), 3);
  EXPECT_EQ(auto_workers(4), 9);
}

}  // namespace
}  // namespace corral::conf
