#include "proxy/router.h"

#include <gtest/gtest.h>

namespace corral::proxy {
namespace {

Router make(std::initializer_list<std::tuple<const char*, const char*, int>> rs) {
  Router r;
  for (auto& [h, p, a] : rs) r.add(h, p, a);
  return r;
}

TEST(RouterTest, PathPrefixMatchesOnSegmentBoundaries) {
  EXPECT_TRUE(path_prefix_match("/api", "/api"));
  EXPECT_TRUE(path_prefix_match("/api", "/api/x"));
  EXPECT_TRUE(path_prefix_match("/api", "/api?q=1"));
  EXPECT_FALSE(path_prefix_match("/api", "/apix"));
  EXPECT_FALSE(path_prefix_match("/api", "/ap"));
  EXPECT_TRUE(path_prefix_match("/", "/anything"));
  EXPECT_TRUE(path_prefix_match("/api/", "/api/x"));
  EXPECT_FALSE(path_prefix_match("/api/", "/api"));
}

TEST(RouterTest, StripPort) {
  EXPECT_EQ(strip_port("example.com:8080"), "example.com");
  EXPECT_EQ(strip_port("example.com"), "example.com");
  EXPECT_EQ(strip_port("[::1]:80"), "[::1]");
  EXPECT_EQ(strip_port("[::1]"), "[::1]");
}

TEST(RouterTest, FirstMatchWins) {
  Router r = make({{"", "/api", 1}, {"", "/", 0}, {"", "/api/v2", 2}});
  EXPECT_EQ(r.match("x", "/api/v2/users"), 1);
  EXPECT_EQ(r.match("x", "/apix"), 0);
  EXPECT_EQ(r.match("x", "/"), 0);
}

TEST(RouterTest, HostIsCaseInsensitiveAndPortStripped) {
  Router r = make({{"Shop.Example.com", "/", 3}, {"", "/static", 4}});
  EXPECT_EQ(r.match("shop.example.COM:8443", "/cart"), 3);
  EXPECT_EQ(r.match("shop.example.com", "/static/a.css"), 3);
  EXPECT_EQ(r.match("other.example.com", "/static/a.css"), 4);
  EXPECT_EQ(r.match("other.example.com", "/cart"), -1);
  EXPECT_EQ(r.match("", "/cart"), -1);
}

TEST(RouterTest, RoutesToUnknownAppsNeverMatch) {
  Router r = make({{"", "/", -1}, {"", "/", 5}});
  EXPECT_EQ(r.match("h", "/x"), 5);
}

TEST(RouterTest, AbsoluteFormTargetRoutesByPath) {
  Router r = make({{"", "/api", 1}});
  EXPECT_EQ(r.match("a.example", "http://a.example/api/x"), 1);
  EXPECT_EQ(r.match("a.example", "http://a.example/other"), -1);
}

TEST(RouterTest, BuildsFromConfigRoutes) {
  std::vector<conf::Route> routes(2);
  routes[0].host = "a.example";
  routes[0].path = "/";
  routes[0].app = "a";
  routes[1].path = "/";
  routes[1].app = "b";
  Router r(routes, [](const std::string& name) { return name == "a" ? 0 : name == "b" ? 1 : -1; });
  EXPECT_EQ(r.match("A.example", "/"), 0);
  EXPECT_EQ(r.match("c.example", "/"), 1);
}

}  // namespace
}  // namespace corral::proxy
