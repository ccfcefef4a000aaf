#include "conf/diagnostics.h"

#include <gtest/gtest.h>

namespace corral::conf {
namespace {

TEST(Diagnostic, FullFormat) {
  Diagnostic d{"demo.toml", 14, 1, "app.shop", "unknown key 'wokers' in [app.shop]", "did you mean 'workers'?"};
  EXPECT_EQ(d.to_string(), "demo.toml:14:1: app.shop: unknown key 'wokers' in [app.shop]; did you mean 'workers'?");
}

TEST(Diagnostic, WithoutPositionKeyOrHint) {
  EXPECT_EQ((Diagnostic{"a.toml", 0, 0, "", "no [[listener]]", ""}).to_string(), "a.toml: no [[listener]]");
  EXPECT_EQ((Diagnostic{"a.toml", 3, 0, "proxy", "bad", ""}).to_string(), "a.toml:3: proxy: bad");
}

TEST(Diagnostics, OnePerLineSortedByPosition) {
  Diagnostics ds;
  ds.add({"f", 0, 0, "", "whole file", ""});
  ds.add({"f", 9, 1, "b", "second", ""});
  ds.add({"f", 2, 5, "a", "first", ""});
  ds.sort_by_position();
  EXPECT_EQ(ds.to_string(), "f:2:5: a: first\nf:9:1: b: second\nf: whole file\n");
}

// Found by fuzz_config: a key with a control character (0x1f in a broken line) was quoted
// raw in the syntax error.
TEST(Diagnostic, ControlCharactersAreEscaped) {
  Diagnostic d{"c.toml", 2, 16, "supervisor.runtime\x1f" "dir", "bad \x1b[31mvalue\n", "say \"x\x7f\""};
  EXPECT_EQ(d.to_string(), "c.toml:2:16: supervisor.runtime\\x1fdir: bad \\x1b[31mvalue\\x0a; say \"x\\x7f\"");
  Diagnostic tab{"c.toml", 1, 0, "", "a\tb", ""};
  EXPECT_EQ(tab.to_string(), "c.toml:1: a\\x09b");
}

TEST(DidYouMean, FindsCloseCandidates) {
  std::vector<std::string_view> keys = {"workers", "concurrency", "command", "cwd", "env", "timeout"};
  EXPECT_EQ(did_you_mean("wokers", keys), "workers");
  EXPECT_EQ(did_you_mean("Workers", keys), "workers");
  EXPECT_EQ(did_you_mean("wrokers", keys), "workers");  // transposition
  EXPECT_EQ(did_you_mean("concurency", keys), "concurrency");
  EXPECT_EQ(did_you_mean("comand", keys), "command");
  EXPECT_EQ(did_you_mean("timeuot", keys), "timeout");
}

TEST(DidYouMean, RejectsFarCandidates) {
  std::vector<std::string_view> keys = {"workers", "cwd", "env"};
  EXPECT_EQ(did_you_mean("banana", keys), "");
  EXPECT_EQ(did_you_mean("xyz", keys), "");
  EXPECT_EQ(did_you_mean("anything", {}), "");
}

}  // namespace
}  // namespace corral::conf
