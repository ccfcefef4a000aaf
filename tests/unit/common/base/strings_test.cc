#include "common/base/strings.h"

#include <gtest/gtest.h>

namespace corral {
namespace {

TEST(StringsTest, ListContainsFindsATokenInACommaList) {
  EXPECT_TRUE(list_contains("no-cache, No-Transform", "no-transform"));
  EXPECT_TRUE(list_contains("gzip;q=0.5 , br", "br"));
  EXPECT_TRUE(list_contains("gzip ;q=0.5", "gzip"));
  EXPECT_FALSE(list_contains("no-transformer", "no-transform"));
  EXPECT_FALSE(list_contains("", "x"));
  // With "/" among the cuts, a protocol with its version is that protocol.
  EXPECT_TRUE(list_contains("websocket/13, h2c", "websocket", "/;"));
  EXPECT_FALSE(list_contains("websocket/13", "websocket"));
}

}  // namespace
}  // namespace corral
