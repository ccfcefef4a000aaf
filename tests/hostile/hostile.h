#pragma once
// The hostile-input suite's frame: one set of real daemons (corral-supervisor, corral-proxy,
// corral-testapp workers that record every request they receive, TESTAPP_CAPTURE) shared by
// every case of a test binary, and a table-driven way to state a case:
//   - the raw bytes a client sends (optionally half-closing after them);
//   - the exact answer: the status line of each response in order (none at all is a case
//     too), and whether the connection is then closed or kept open (proved by a second
//     request on it);
//   - what the worker saw: nothing, or the forwarded requests, checked by the case (for
//     example: hop-by-hop fields gone). Every forwarded head must also be accepted by
//     corral's own strict parser (common/http1);
//   - and, after each case, that a fresh client is served at once.
// See tests/hostile/README.md for the rules and their cases.
//
// Not thread-safe: cases run one after another on the test's main thread.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/integration/harness/clients.h"
#include "tests/integration/harness/config_builder.h"
#include "tests/integration/harness/corral_process.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::hostile {

using itest::Headers;

/// One request as a worker received it (from a TESTAPP_CAPTURE file).
struct Forwarded {
  std::string app;      ///< the app's WHOAMI ("main", "other")
  std::string read;     ///< the test app's verdict: "ok", "malformed" or "bad-body"
  std::string raw_head; ///< exactly as received, to the final CRLF CRLF
  std::string method, target, version;
  Headers headers;      ///< in order, values trimmed
  std::string body;     ///< as the app read it (de-chunked)

  /// The first value of `name` (any case), or nullopt when absent.
  std::optional<std::string> header(std::string_view name) const;
  /// Every value of `name` (any case), in order.
  std::vector<std::string> all(std::string_view name) const;
};

/// One response read from the raw bytes of a connection.
struct Answer {
  std::string status_line;  ///< "HTTP/1.1 400 Bad Request"
  int status = 0;
  Headers headers;
  std::string body;
  std::string header(std::string_view name) const { return itest::header_value(headers, name); }
};

/// What happens to the connection after the expected answers.
enum class After {
  Closed,    ///< the proxy closes it (no further bytes)
  KeptOpen,  ///< a second request on it is answered 200
};

/// One hostile case. `name` is the gtest name (letters, digits, '_') and README's.
struct Case {
  std::string name;
  std::string rule;        ///< "RFC 9112 §5.2"
  std::string send;        ///< raw bytes
  /// Status of each response expected, in order (interim 1xx included); empty = no answer.
  std::vector<int> statuses;
  After after = After::Closed;
  /// Requests the worker must have received (the probes of the frame are not counted).
  size_t forwarded = 0;
  /// More checks on what the worker received (called only when the count matched).
  std::function<void(const std::vector<Forwarded>&)> check_worker;
  /// More checks on the answers (called only when all expected answers arrived).
  std::function<void(const std::vector<Answer>&)> check_answers;
  bool half_close = false;  ///< shut down the client's write side after sending
  /// The last answer is cut short by the proxy's close (its head arrived, not all its body):
  /// `statuses` lists the complete ones, the connection must close after the partial one.
  bool truncated = false;
  /// Sent after the first answer has arrived (the body after a 100 Continue).
  std::string then_send;
  /// The requests whose answers carry no body although they announce a length (HEAD),
  /// by position.
  std::vector<bool> head_requests;
};

/// The daemons a test binary shares: apps "main" (route "/", the default) and "other"
/// (route for Host "other.example"), both corral-testapp with TESTAPP_CAPTURE, one worker
/// each. `configure` may change the config before start (extra routes, proxy keys).
class Daemons {
 public:
  /// Starts corral; a fatal gtest failure when it does not come up.
  static void start(const std::function<void(itest::ConfigBuilder&)>& configure = {});
  /// Stops corral (TERM, exit 0 expected) and keeps the temp dir when a test failed.
  static void stop();
  static int port();
  /// Removes every capture file (before a case).
  static void clear_captures();
  /// The requests captured so far, oldest first per worker.
  static std::vector<Forwarded> captures();
  /// Log lines (supervisor, proxy, apps) for failure reports.
  static std::string log_tail(size_t lines);
};

/// Runs one case against Daemons::port() with gtest assertions (non-fatal where possible).
void run_case(const Case& c);

/// gtest prints a case by its name and rule.
void PrintTo(const Case& c, std::ostream* os);

/// Builds a request: "METHOD target HTTP/1.1\r\nHost: h\r\n" + extra + "\r\n" + body.
std::string req(std::string_view method, std::string_view target, std::string_view extra = "",
                std::string_view body = "", std::string_view version = "HTTP/1.1", std::string_view host = "h.test");

/// gtest parameter name printer for cases.
struct CaseName {
  std::string operator()(const ::testing::TestParamInfo<Case>& info) const { return info.param.name; }
};

}  // namespace corral::hostile
