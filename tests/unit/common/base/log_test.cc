#include "common/base/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace corral::log {
namespace {

LineContext ctx(bool journal) {
  LineContext c;
  c.program = "corral-proxy";
  c.pid = 812;
  c.time.tv_sec = 1795627081;  // 2026-11-25T17:18:01Z
  c.time.tv_usec = 123456;
  c.journal = journal;
  return c;
}

std::string line(Level l, std::string_view tag, std::string_view msg, bool journal) {
  std::string out;
  format_line(l, tag, msg, ctx(journal), out);
  return out;
}

TEST(LogFormat, PlainLinesAreUnchanged) {
  EXPECT_EQ(line(Level::Warn, "app=shop slot=3", "exited with 1", false),
            "2026-11-25T17:18:01.123Z warn corral-proxy[812] [app=shop slot=3] exited with 1\n");
  EXPECT_EQ(line(Level::Info, "", "ready", false), "2026-11-25T17:18:01.123Z info corral-proxy[812] ready\n");
}

TEST(LogFormat, JournalLinesCarryTheSyslogPriority) {
  EXPECT_EQ(line(Level::Error, "proxy", "boom", true), "<3>2026-11-25T17:18:01.123Z error corral-proxy[812] [proxy] boom\n");
  EXPECT_EQ(line(Level::Warn, "", "w", true).substr(0, 4), "<4>2");
  EXPECT_EQ(line(Level::Info, "", "i", true).substr(0, 4), "<6>2");
  EXPECT_EQ(line(Level::Debug, "", "d", true).substr(0, 4), "<7>2");
}

TEST(LogFormat, SyslogPriorities) {
  EXPECT_EQ(syslog_priority(Level::Error), 3);
  EXPECT_EQ(syslog_priority(Level::Warn), 4);
  EXPECT_EQ(syslog_priority(Level::Info), 6);
  EXPECT_EQ(syslog_priority(Level::Debug), 7);
}

TEST(JournalStream, MatchesOnlyTheFileItNames) {
  char path[] = "/tmp/crl-log-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  struct stat st;
  ASSERT_EQ(::fstat(fd, &st), 0);
  const std::string same = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  const std::string other_inode = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  const std::string other_dev = std::to_string(st.st_dev + 1) + ":" + std::to_string(st.st_ino);
  EXPECT_TRUE(is_journal_stream(fd, same.c_str()));
  EXPECT_FALSE(is_journal_stream(fd, other_inode.c_str()));
  EXPECT_FALSE(is_journal_stream(fd, other_dev.c_str()));
  EXPECT_FALSE(is_journal_stream(fd, nullptr));
  EXPECT_FALSE(is_journal_stream(fd, ""));
  EXPECT_FALSE(is_journal_stream(fd, "12345"));
  EXPECT_FALSE(is_journal_stream(fd, (same + "x").c_str()));
  EXPECT_FALSE(is_journal_stream(fd, (":" + std::to_string(st.st_ino)).c_str()));
  // Another open file (a pipe: what a child's captured stderr is) is not the journal.
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_FALSE(is_journal_stream(p[1], same.c_str()));
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_FALSE(is_journal_stream(-1, same.c_str()));

  // The process-wide decision follows the log fd and the variable.
  const char* saved = std::getenv("JOURNAL_STREAM");
  const std::string saved_value = saved ? saved : "";
  const int saved_fd = log::fd();
  ::setenv("JOURNAL_STREAM", same.c_str(), 1);
  set_fd(fd);
  EXPECT_TRUE(to_journal());
  write_line(Level::Warn, "t", "to the journal");
  ::setenv("JOURNAL_STREAM", other_inode.c_str(), 1);
  set_fd(fd);
  EXPECT_FALSE(to_journal());
  write_line(Level::Warn, "t", "plain");
  set_fd(saved_fd);
  if (saved) ::setenv("JOURNAL_STREAM", saved_value.c_str(), 1);
  else ::unsetenv("JOURNAL_STREAM");
  std::string written(4096, '\0');
  ssize_t n = ::pread(fd, written.data(), written.size(), 0);
  ASSERT_GT(n, 0);
  written.resize(static_cast<size_t>(n));
  const auto nl = written.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(written.substr(0, 4), "<4>2") << written;
  EXPECT_NE(written.find(" warn corral"), std::string::npos) << written;
  EXPECT_EQ(written.substr(nl + 1, 3), "202") << written;  // the second line has no prefix
  ::close(fd);
  ::unlink(path);
}

TEST(ParseLine, TakesCorralLinesApart) {
  ParsedLine p;
  ASSERT_TRUE(parse_line("2026-11-25T17:18:01.123Z error corral-worker[77] [app=shop worker=2] cannot run x: ENOENT", p));
  EXPECT_EQ(p.level, Level::Error);
  EXPECT_EQ(p.program, "corral-worker");
  EXPECT_EQ(p.pid, 77);
  EXPECT_EQ(p.tag, "app=shop worker=2");
  EXPECT_EQ(p.message, "cannot run x: ENOENT");

  ASSERT_TRUE(parse_line("<4>2026-11-25T17:18:01.123Z warn corral-worker[77] no tag here", p));
  EXPECT_EQ(p.level, Level::Warn);
  EXPECT_EQ(p.tag, "");
  EXPECT_EQ(p.message, "no tag here");

  ASSERT_TRUE(parse_line("2026-11-25T17:18:01.123Z debug corral-worker[77] [t] ", p));
  EXPECT_EQ(p.level, Level::Debug);
  EXPECT_EQ(p.tag, "t");
  EXPECT_EQ(p.message, "");

  // What format_line writes, parsed back.
  std::string l = line(Level::Info, "app=a worker=0", "hello [x] world", true);
  l.pop_back();
  ASSERT_TRUE(parse_line(l, p));
  EXPECT_EQ(p.level, Level::Info);
  EXPECT_EQ(p.program, "corral-proxy");
  EXPECT_EQ(p.pid, 812);
  EXPECT_EQ(p.tag, "app=a worker=0");
  EXPECT_EQ(p.message, "hello [x] world");
}

TEST(ParseLine, RefusesAnythingElse) {
  ParsedLine p;
  EXPECT_FALSE(parse_line("", p));
  EXPECT_FALSE(parse_line("ERROR:root:boom", p));
  EXPECT_FALSE(parse_line("2026-11-25 17:18:01 error x[1] y", p));
  EXPECT_FALSE(parse_line("2026-11-25T17:18:01.123Z fatal corral-worker[77] x", p));
  EXPECT_FALSE(parse_line("2026-11-25T17:18:01.123Z error corral-worker x", p));
  EXPECT_FALSE(parse_line("2026-11-25T17:18:01.123Z error corral-worker[7x] x", p));
  EXPECT_FALSE(parse_line("2026-11-25T17:18:01.123Z error corral worker[7] x", p));
  EXPECT_FALSE(parse_line("2026-11-25T17:18:01.123Zerror corral-worker[7] x", p));
}

}  // namespace
}  // namespace corral::log
