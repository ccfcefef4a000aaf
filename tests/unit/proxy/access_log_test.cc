#include "proxy/access_log.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace corral::proxy {
namespace {

AccessRecord sample() {
  AccessRecord r;
  r.client_ip = "10.0.0.7";
  r.method = "GET";
  r.target = "/cart?id=\"1\"";
  r.version_minor = 1;
  r.status = 200;
  r.bytes_sent = 1234;
  r.referer = "";
  r.user_agent = "curl/8.0";
  r.request_id = "deadbeef-000000000001";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.app = "shop";
  r.slot = 3;
  r.queue_s = 0.0014;
  r.upstream_s = 0.25;
  r.rt_s = 1.2516;
  r.time = 1795627081;  // 2026-11-25T17:18:01Z
  return r;
}

TEST(AccessLogTest, CombinedFormat) {
  std::string line;
  format_combined(sample(), line);
  EXPECT_EQ(line,
            "10.0.0.7 - - [25/Nov/2026:17:18:01 +0000] \"GET /cart?id=\\x221\\x22 HTTP/1.1\" 200 1234 \"-\" "
            "\"curl/8.0\" rid=deadbeef-000000000001 trace=4bf92f3577b34da6a3ce929d0e0e4736 worker=shop#3 queue=0.001 "
            "upstream=0.250 rt=1.252\n");
}

TEST(AccessLogTest, CombinedWithoutTrace) {
  AccessRecord r = sample();
  r.trace_id = "";
  std::string line;
  format_combined(r, line);
  EXPECT_NE(line.find(" rid=deadbeef-000000000001 trace=- worker=shop#3 "), std::string::npos) << line;
}

TEST(AccessLogTest, CombinedWithoutWorker) {
  AccessRecord r = sample();
  r.app = "";
  r.slot = -1;
  r.status = 404;
  std::string line;
  format_combined(r, line);
  EXPECT_NE(line.find(" 404 1234 "), std::string::npos);
  EXPECT_NE(line.find(" worker=- "), std::string::npos);
}

TEST(AccessLogTest, JsonFormatHasTheSameFields) {
  std::string line;
  format_json(sample(), line);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["remote_addr"], "10.0.0.7");
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["target"], "/cart?id=\"1\"");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["bytes"], 1234);
  EXPECT_EQ(j["rid"], "deadbeef-000000000001");
  EXPECT_EQ(j["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(j["worker"], "shop#3");
  EXPECT_DOUBLE_EQ(j["upstream"].get<double>(), 0.25);
  EXPECT_EQ(j["time"], "2026-11-25T17:18:01Z");
}

TEST(AccessLogTest, JsonEscapesControlBytes) {
  AccessRecord r = sample();
  r.user_agent = std::string_view("a\x01\xff", 3);
  r.app = "";
  std::string line;
  format_json(r, line);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["user_agent"], "a\x01\xc3\xbf");
  EXPECT_TRUE(j["worker"].is_null());
}

TEST(AccessLogTest, WritesToAFileAndOffIsDisabled) {
  char path[] = "/tmp/corral-accesslog-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto log = AccessLog::open(path, conf::AccessLogFormat::Combined);
  ASSERT_TRUE(log) << log.error().message();
  std::string line;
  (*log)->format(sample(), line);
  (*log)->write(line);
  (*log)->write(line);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), line + line);
  ::unlink(path);
  auto off = AccessLog::open("off", conf::AccessLogFormat::Json);
  ASSERT_TRUE(off);
  EXPECT_FALSE((*off)->enabled());
}

TEST(AccessLogTest, AFullDiskDropsLinesAndReportsFailure) {
  auto log = AccessLog::open("/dev/full", conf::AccessLogFormat::Combined);  // every write: ENOSPC
  ASSERT_TRUE(log) << log.error().message();
  std::string line;
  (*log)->format(sample(), line);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE((*log)->write(line));
}

// A write cut by the file size limit (EFBIG, as a disk filling up mid-line) leaves a torn
// line; once writes work again the torn line is ended first, so the next line is whole.
TEST(AccessLogTest, WritingResumesOnALineOfItsOwnAfterTheLimitIsRaised) {
  char path[] = "/tmp/corral-accesslog-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto log = AccessLog::open(path, conf::AccessLogFormat::Combined);
  ASSERT_TRUE(log);
  std::string line;
  (*log)->format(sample(), line);
  ASSERT_TRUE((*log)->write(line));
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &before), 0);
  rlimit tight{static_cast<rlim_t>(line.size() + 20), before.rlim_max};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  EXPECT_FALSE((*log)->write(line));  // 20 bytes go, then EFBIG
  EXPECT_FALSE((*log)->write(line));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &before), 0);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE((*log)->write(line));
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), line + line.substr(0, 20) + "\n" + line);
  ::unlink(path);
}

}  // namespace
}  // namespace corral::proxy
