#include "conf/syntax_error.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "conf/loader.h"

namespace corral::conf {
namespace {

std::string load_err(std::string_view text) {
  auto c = load_string(text, "t.toml");
  EXPECT_FALSE(c.has_value());
  return c ? "" : c.error().to_string();
}

TEST(SyntaxError, SameShapeAsOtherDiagnostics) {
  EXPECT_EQ(load_err("[app.x]\ncommand = [\"/bin/x\",\n"),
            "t.toml:2:11: app.x.command: syntax error: this array is never closed (the file ends first); "
            "add the missing ']'\n");
}

TEST(SyntaxError, AlwaysOneLine) {
  // toml++ quotes what it saw verbatim, newline included.
  std::string err = load_err("[[listener]]\nh2 = tru\n");
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("saw 'tru\\n'"), std::string::npos) << err;
}

TEST(SyntaxError, UnclosedThingsAreReportedWhereTheyOpen) {
  EXPECT_EQ(load_err("a = 1\n[proxy]\naccess_log = \"\"\"x\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n"),
            "t.toml:3:14: proxy.access_log: syntax error: this multi-line string is never closed (the file ends "
            "first); add the missing '\"\"\"'\n");
  EXPECT_EQ(load_err("[[listener]]\naddress = { a = [1, { b = [2\n"),
            "t.toml:2:27: listener[0].address: syntax error: this array is never closed (the file ends first); "
            "add the missing ']'\n");
  EXPECT_EQ(load_err("[supervisor]\nruntime_dir = '/run/x\nuser = 'u'\n"),
            "t.toml:2:15: supervisor.runtime_dir: syntax error: this string is not closed on its line; add the "
            "missing \"'\" (a string over several lines is written '''...''')\n");
  EXPECT_EQ(load_err("[app.x\ncommand = []\n"),
            "t.toml:1:1: syntax error: this table header is not closed on its line; add the missing ']'\n");
}

TEST(SyntaxError, ArraysOfTablesCountLikeTheLoader) {
  EXPECT_EQ(load_err("[[route]]\napp = \"a\"\n[[route]]\napp = \"b\" x\n"),
            "t.toml:4:11: route[1].app: syntax error in key-value pair: expected a comment or "
            "whitespace, saw 'x'\n");
}

TEST(SyntaxError, ColumnsCountCharactersNotBytes) {
  // "é" is two bytes; toml++ counts it as one column, and so does the opener's position.
  Diagnostic d = syntax_error("# é\nx = [\"é\", [\n", "f", 3, 1, "Error while parsing array: encountered end-of-file");
  EXPECT_EQ(d.line, 2);
  EXPECT_EQ(d.column, 11);
  EXPECT_EQ(d.key, "x");
}

TEST(SyntaxError, CommentsAndStringsDoNotOpenAnything) {
  Diagnostic d = syntax_error("a = \"[{\" # [\nb = ']' \nc = [\n", "f", 4, 1,
                              "Error while parsing array: encountered end-of-file");
  EXPECT_EQ(d.to_string(), "f:3:5: c: syntax error: this array is never closed (the file ends first); add the missing ']'");
}

TEST(SyntaxError, UnknownTextKeepsToml) {
  Diagnostic d = syntax_error("", "f", 1, 1, "Encountered invalid utf-8 sequence");
  EXPECT_EQ(d.to_string(), "f:1:1: syntax error: encountered invalid utf-8 sequence");
}

}  // namespace
}  // namespace corral::conf
