// A WebSocket from a real browser: headless Chromium loads a page served by corral over TLS
// (h2 by ALPN) whose script opens a WebSocket to the echo app behind corral on the same
// origin, sends a message and checks the echo. The access log tells whether the browser
// used HTTP/2 extended CONNECT (RFC 8441) or a separate HTTP/1.1 connection; the test
// prints which. Skipped when no Chromium is installed (label chromium).
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/integration/harness/chromium.h"
#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

class WebSocketChromiumTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (Chromium::find_binary().empty()) GTEST_SKIP() << "no chromium (packaging/install-deps.sh test installs it)";
    config_.listeners({});
    ASSERT_NO_FATAL_FAILURE(add_tls_listener());  // the only listener
    AppSpec& a = config_.app("ws");
    a.command = {"/usr/bin/python3", std::string(CORRAL_SOURCE_DIR) + "/tests/apps/websocket_echo/echo.py"};
    a.set("health_path", quote("/health"));
    a.workers(1).concurrency(8);
    config_.route("ws", "/");
  }
};

TEST_F(WebSocketChromiumTest, APageOpensAWebSocketThroughCorral) {
  ASSERT_NO_FATAL_FAILURE(start());
  Chromium browser;
  std::string error;
  ASSERT_TRUE(browser.start(rt_.path(), 800, 600, &error)) << error;
  ASSERT_TRUE(browser.ignore_certificate_errors(&error)) << error;
  const std::string url = "https://localhost:" + std::to_string(port()) + "/page";
  ASSERT_TRUE(browser.open(url, &error)) << error;
  EXPECT_TRUE(browser.wait_for("window.wsResult !== 'pending'", 15s));
  nlohmann::json result = browser.evaluate("window.wsResult", &error);
  EXPECT_EQ(result, "ok") << result.dump() << " " << error;
  browser.stop();
  // How the browser reached the app: one access-log line per tunnel.
  const bool h2 = !log_lines_with("\"CONNECT /echo HTTP/2.0\" 200").empty();
  const bool h1 = !log_lines_with("\"GET /echo HTTP/1.1\" 101").empty();
  std::printf("[websocket] Chromium's WebSocket went over %s\n",
              h2 ? "HTTP/2 extended CONNECT (RFC 8441)" : h1 ? "HTTP/1.1 Upgrade" : "nothing logged");
  EXPECT_TRUE(h1 || h2);
  for (const std::string& e : browser.errors())  // the app has no favicon (it answers 426)
    EXPECT_NE(e.find("favicon.ico"), std::string::npos) << e;
}

}  // namespace
}  // namespace corral::itest
