#pragma once
// IntegrationTest: the gtest fixture every integration test derives from. It owns the
// TempRuntime, a ConfigBuilder preset for it, and the CorralProcess; TearDown stops corral
// (TERM, expects exit 0 within graceful_timeout + margin) and runs the audits:
//   - no process of the run is left (process group, env marker, pids seen in status);
//   - no error/alert line in the log except those in allowed_errors_;
//   - on failure: print the last 200 log lines and keep the temp dir.
//
// Not thread-safe: the fixture lives on the test's main thread.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness/audits.h"
#include "tests/integration/harness/clients.h"
#include "tests/integration/harness/config_builder.h"
#include "tests/integration/harness/corral_process.h"
#include "tests/integration/harness/subprocess.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {

/// True in the AddressSanitizer build (make test-asan). Its redzones, shadow memory and
/// quarantine make RSS figures the sanitizer's, so memory bounds hold in the plain build only.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif

class IntegrationTest : public ::testing::Test {
 protected:
  IntegrationTest() : config_(rt_.path()) {}

  /// Writes config_ and starts corral; fails the test (fatally) when it is not ready.
  /// Call as ASSERT_NO_FATAL_FAILURE(start()).
  void start();
  /// The listener port (valid after start()).
  int port() const { return port_; }
  /// TERM, then expects exit code 0 within `timeout`; then audits for leftovers.
  void stop_and_expect_clean(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Polls status every 100 ms until `pred(status)` holds; false on timeout.
  bool wait_status(const std::function<bool(const nlohmann::json&)>& pred, std::chrono::milliseconds timeout);
  /// The log lines (any source) that mention `needle`.
  std::vector<std::string> log_lines_with(const std::string& needle) const;
  /// The lines the testapp itself printed (TESTAPP_LOG=1: "testapp pid=N METHOD TARGET")
  /// that mention `needle`: what the app saw, as opposed to the access log.
  std::vector<std::string> app_lines_with(const std::string& needle) const;

  /// `corralctl --socket RUNTIME/control.sock ARGS...`, run to completion (or `timeout`).
  ProcessResult ctl(const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  /// Writes config_ to the config file corral was started with, then `corralctl reload`.
  ProcessResult reload_config();
  /// The proxy's pid from status; 0 when status has none.
  pid_t proxy_pid();
  /// The admin listener's bound port from status (admin.bound); 0 when there is none.
  int admin_port();
  /// A self-signed P-256 certificate NAME.pem + NAME.key in the temp dir, for CN `cn` (with
  /// subjectAltName `cn` and localhost). A fatal failure when openssl fails: call as
  /// ASSERT_NO_FATAL_FAILURE(make_cert()).
  void make_cert(const std::string& name = "t", const std::string& cn = "localhost");
  /// make_cert() plus a TLS listener on 127.0.0.1:0 (t.pem / t.key, h2 and http/1.1 by ALPN)
  /// after the configured ones: listener 1 with the default plaintext listener 0.
  void add_tls_listener();

  void TearDown() override;

  TempRuntime rt_;
  ConfigBuilder config_;
  std::unique_ptr<CorralProcess> corral_;
  std::vector<std::string> allowed_errors_;
  /// The corral-supervisor start() runs; empty = the built one.
  std::string supervisor_binary_;
  bool stopped_ = false;

 private:
  void audit_leftovers();
  int port_ = 0;
};

}  // namespace corral::itest
