#include "supervisor/child_output.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

struct Collect {
  std::vector<std::string> lines;
  std::vector<bool> continued;
  LineSplitter splitter{[this](std::string_view l, bool c) {
    lines.emplace_back(l);
    continued.push_back(c);
  }};
};

TEST(LineSplitter, SplitsOnNewlinesAcrossFeeds) {
  Collect c;
  c.splitter.feed("one\ntw");
  c.splitter.feed("o\r\nthree\n\nfour");
  EXPECT_EQ(c.lines, (std::vector<std::string>{"one", "two", "three", ""}));
  c.splitter.flush();
  EXPECT_EQ(c.lines.back(), "four");
  c.splitter.flush();  // nothing pending: nothing emitted
  EXPECT_EQ(c.lines.size(), 5u);
}

TEST(LineSplitter, SplitsOverlongLinesAt4KiB) {
  Collect c;
  std::string big(kMaxLine * 2 + 10, 'x');
  c.splitter.feed(big.substr(0, 100));
  c.splitter.feed(big.substr(100) + "\nnext\n");
  ASSERT_EQ(c.lines.size(), 4u);
  EXPECT_EQ(c.lines[0].size(), kMaxLine);
  EXPECT_EQ(c.lines[1].size(), kMaxLine);
  EXPECT_EQ(c.lines[2], std::string(10, 'x'));
  EXPECT_EQ(c.lines[3], "next");
  // The pieces after the first continue it (they keep its level); the next line does not.
  EXPECT_EQ(c.continued, (std::vector<bool>{false, true, true, false}));
}

TEST(LineSplitter, ALineOfExactlyMaxLengthIsOneLine) {
  Collect c;
  c.splitter.feed(std::string(kMaxLine, 'y'));
  c.splitter.feed("\n");
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0].size(), kMaxLine);
  EXPECT_FALSE(c.continued[0]);
}

}  // namespace
}  // namespace corral::supervisor
