// Recycling by memory: a worker above max_rss (PSS of its process group) is replaced
// make-before-break — its successor is ready before it stops — and no request fails meanwhile.
#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/harness/integration_test.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class RecycleTest : public IntegrationTest {};

TEST_F(RecycleTest, WorkerAboveMaxRssIsReplacedWithoutFailingRequests) {
  config_.app("demo").workers(1).set("max_rss", quote("64MiB"));
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse first = http_get(port(), "/pid");
  ASSERT_EQ(first.status, 200) << first.error;
  HttpResponse alloc = http_get(port(), "/alloc?mb=128");
  ASSERT_EQ(alloc.status, 200) << alloc.error;

  // Keep asking until another process answers; every answer must be a 200.
  int failures = 0;
  std::string second;
  auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline) {
    HttpResponse r = http_get(port(), "/pid");
    if (r.status != 200) ++failures;
    else if (r.body != first.body) {
      second = r.body;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_FALSE(second.empty()) << "the worker above max_rss was never replaced";
  EXPECT_EQ(failures, 0);
  EXPECT_FALSE(log_lines_with("max_rss").empty()) << "no log line names max_rss as the reason";
}

}  // namespace
}  // namespace corral::itest
