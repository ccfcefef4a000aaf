#include "common/base/units.h"

#include <gtest/gtest.h>

#include "common/base/strings.h"

namespace corral {
namespace {

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration("30s"), Millis(30'000));
  EXPECT_EQ(parse_duration("250ms"), Millis(250));
  EXPECT_EQ(parse_duration("2m"), Millis(120'000));
  EXPECT_EQ(parse_duration("1h"), Millis(3'600'000));
  EXPECT_EQ(parse_duration("1.5s"), Millis(1500));
  EXPECT_EQ(parse_duration("7"), Millis(7000));
  for (const char* bad : {"", "s", "-1s", "1x", "1..5s", ".5s", "5.s", "1e3s", "ms"})
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  EXPECT_EQ(format_duration(Millis(30'000)), "30s");
  EXPECT_EQ(format_duration(Millis(250)), "250ms");
  EXPECT_EQ(format_duration(Millis(120'000)), "2m");
}

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_size("16k"), 16ull << 10);
  EXPECT_EQ(parse_size("1GB"), 1ull << 30);
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("0"), 0u);
  for (const char* bad : {"", "MiB", "-1", "1TiB", "12 parsecs", "99999999999G"})
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
}

TEST(Strings, Helpers) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("Content-Length", "content-lengt"));
  EXPECT_EQ(trim_ows(" \t a b \t"), "a b");
  EXPECT_EQ(parse_decimal("0042"), 42u);
  EXPECT_FALSE(parse_decimal("").has_value());
  EXPECT_FALSE(parse_decimal("4 2").has_value());
  EXPECT_FALSE(parse_decimal("99999999999999999999").has_value());
  auto parts = split("a,,b", ',');
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[1], "");
}

}  // namespace
}  // namespace corral
