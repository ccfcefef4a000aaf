// The configs corral ships (conf/corral.toml, conf/demo.toml, conf/examples/*.toml) must load.
#include <gtest/gtest.h>

#include <filesystem>

#include "conf/loader.h"

namespace corral::conf {
namespace {

namespace fs = std::filesystem;

const fs::path kConf = fs::path(CORRAL_SOURCE_DIR) / "conf";

TEST(ShippedConfigs, DefaultLoads) {
  auto c = load_file((kConf / "corral.toml").string());
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(c->supervisor.runtime_dir, "/run/corral");
  EXPECT_FALSE(c->listeners.empty());
}

TEST(ShippedConfigs, DemoLoads) {
  auto c = load_file((kConf / "demo.toml").string());
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(c->supervisor.runtime_dir, "/tmp/corral-demo");
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_EQ(c->listeners[0].address, "127.0.0.1:8080");
  ASSERT_EQ(c->routes.size(), 1u);
  EXPECT_EQ(c->routes[0].path, "/");
  const App* demo = c->find_app(c->routes[0].app);
  ASSERT_NE(demo, nullptr);
  EXPECT_EQ(demo->workers, 4);
  EXPECT_EQ(demo->concurrency, 1);
  // ../build/bin/corral-testapp relative to conf/ → <repo>/build/bin/corral-testapp
  EXPECT_EQ(fs::path(demo->command.at(0)),
            (fs::path(CORRAL_SOURCE_DIR) / "build/bin/corral-testapp").lexically_normal());
}

TEST(ShippedConfigs, EveryExampleLoads) {
  int n = 0;
  for (auto& e : fs::directory_iterator(kConf / "examples")) {
    if (e.path().extension() != ".toml") continue;
    ++n;
    auto c = load_file(e.path().string());
    EXPECT_TRUE(c.has_value()) << e.path() << ":\n" << (c ? "" : c.error().to_string());
  }
  EXPECT_GE(n, 2);
}

}  // namespace
}  // namespace corral::conf
