// Data-driven config corpus: tests/unit/data/conf/invalid/NNN.toml must fail with exactly the
// text in NNN.err (file named by its basename); valid/NNN.toml must load and round-trip.
// CORRAL_UPDATE_GOLDEN=1 rewrites the .err files (review the diff before committing).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conf/loader.h"
#include "conf/snapshot.h"

namespace corral::conf {
namespace {

namespace fs = std::filesystem;

const fs::path kData = fs::path(CORRAL_SOURCE_DIR) / "tests/unit/data/conf";

std::vector<std::string> cases(const char* kind) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(kData / kind, ec))
    if (e.path().extension() == ".toml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

class InvalidConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidConfig, FailsWithGoldenText) {
  fs::path toml = kData / "invalid" / (GetParam() + ".toml");
  fs::path err = kData / "invalid" / (GetParam() + ".err");
  auto c = load_string(slurp(toml), toml.filename().string());
  ASSERT_FALSE(c.has_value()) << toml << " loaded but must not";
  std::string got = c.error().to_string();
  if (const char* u = std::getenv("CORRAL_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream(err, std::ios::binary) << got;
    return;
  }
  ASSERT_TRUE(fs::exists(err)) << "missing golden file " << err << "; got:\n" << got;
  EXPECT_EQ(got, slurp(err)) << toml;
}

class ValidConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(ValidConfig, LoadsAndRoundTrips) {
  fs::path toml = kData / "valid" / (GetParam() + ".toml");
  auto c = load_file(toml.string());
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_FALSE(c->listeners.empty());
  auto back = from_snapshot(to_snapshot(*c));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(*back, *c);
}

std::string name_of(const ::testing::TestParamInfo<std::string>& info) { return "Case" + info.param; }

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidConfig, ::testing::ValuesIn(cases("invalid")), name_of);
INSTANTIATE_TEST_SUITE_P(Corpus, ValidConfig, ::testing::ValuesIn(cases("valid")), name_of);

TEST(Corpus, IsLargeEnough) {
  EXPECT_GE(cases("invalid").size(), 15u);
  EXPECT_GE(cases("valid").size(), 3u);
  for (auto& name : cases("invalid")) EXPECT_TRUE(fs::exists(kData / "invalid" / (name + ".err"))) << name;
}

}  // namespace
}  // namespace corral::conf
