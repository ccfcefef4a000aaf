// W3C Trace Context through the proxy, over HTTP/1.1 and h2c alike: a valid traceparent
// reaches the app unchanged (with its tracestate), an invalid or missing one is replaced by
// a generated one (and the client's tracestate dropped), and the access log line carries the
// trace-id that was sent (combined and JSON). CGI and FastCGI programs see HTTP_TRACEPARENT.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr const char* kValidTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

bool well_formed_00(const std::string& tp) {
  static const std::regex re("00-[0-9a-f]{32}-[0-9a-f]{16}-01");
  return std::regex_match(tp, re) && tp.substr(3, 32) != std::string(32, '0') && tp.substr(36, 16) != std::string(16, '0');
}

enum class Proto { H1, H2c };

class TraceTest : public IntegrationTest, public ::testing::WithParamInterface<Proto> {
 protected:
  // GET /echo?case=<name> with extra headers over the parameter's protocol; the echoed
  // traceparent and tracestate fields.
  struct Seen {
    std::vector<std::string> traceparent, tracestate;
  };
  Seen echo(const std::string& name, const std::vector<std::string>& headers) {
    std::vector<std::string> args;
    if (GetParam() == Proto::H2c) args.push_back("--http2-prior-knowledge");
    for (auto& h : headers) {
      args.push_back("-H");
      args.push_back(h);
    }
    args.push_back("http://127.0.0.1:" + std::to_string(port()) + target(name));
    HttpResponse r = curl(args);
    EXPECT_EQ(r.status, 200) << r.error;
    nlohmann::json e = parse_echo(r.body);
    EXPECT_TRUE(e.is_object()) << r.body;
    return Seen{echo_headers(e, "traceparent"), echo_headers(e, "tracestate")};
  }
  std::string target(const std::string& name) const {
    return "/echo?case=" + name + (GetParam() == Proto::H2c ? "-h2" : "-h1");
  }
  // The access-log line of that request (written once its response is out: wait a little).
  std::string access_line(const std::string& name) {
    const std::string needle = "\"GET " + target(name) + " HTTP/";
    for (int i = 0; i < 40; ++i) {
      for (auto& l : log_lines_with(needle))
        if (l.find(" rid=") != std::string::npos) return l;
      std::this_thread::sleep_for(50ms);
    }
    return "";
  }
};

TEST_P(TraceTest, ValidTraceparentReachesTheAppUnchanged) {
  ASSERT_NO_FATAL_FAILURE(start());
  Seen s = echo("valid", {std::string("traceparent: ") + kValid, "tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"});
  ASSERT_EQ(s.traceparent.size(), 1u);
  EXPECT_EQ(s.traceparent[0], kValid);
  ASSERT_EQ(s.tracestate.size(), 1u) << "tracestate goes along with the client's own traceparent";
  EXPECT_EQ(s.tracestate[0], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
  std::string line = access_line("valid");
  EXPECT_NE(line.find(std::string(" trace=") + kValidTraceId + " "), std::string::npos) << line;

  // A later version: its first 55 characters have the shape; passed on as it came.
  const std::string v_cc = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds";
  s = echo("future", {"traceparent: " + v_cc});
  ASSERT_EQ(s.traceparent.size(), 1u);
  EXPECT_EQ(s.traceparent[0], v_cc);
  line = access_line("future");
  EXPECT_NE(line.find(std::string(" trace=") + kValidTraceId + " "), std::string::npos) << line;
}

TEST_P(TraceTest, InvalidTraceparentIsReplacedAndItsTracestateDropped) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::vector<std::string> invalid = {
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",       // upper case
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace-id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // 00 with more fields
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // version ff
      "garbage",
  };
  for (size_t i = 0; i < invalid.size(); ++i) {
    const std::string name = "invalid" + std::to_string(i);
    Seen s = echo(name, {"traceparent: " + invalid[i], "tracestate: vendor=forged"});
    ASSERT_EQ(s.traceparent.size(), 1u) << invalid[i];
    EXPECT_NE(s.traceparent[0], invalid[i]) << "an invalid traceparent was forwarded";
    EXPECT_TRUE(well_formed_00(s.traceparent[0])) << s.traceparent[0];
    EXPECT_TRUE(s.tracestate.empty()) << "tracestate of an invalid traceparent was forwarded: " << s.tracestate[0];
    std::string line = access_line(name);
    EXPECT_NE(line.find(" trace=" + s.traceparent[0].substr(3, 32) + " "), std::string::npos) << line;
  }
  // Two traceparent fields, even valid ones: ambiguous, so a new trace.
  Seen s = echo("two", {std::string("traceparent: ") + kValid,
                        "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
  ASSERT_EQ(s.traceparent.size(), 1u);
  EXPECT_TRUE(well_formed_00(s.traceparent[0])) << s.traceparent[0];
  EXPECT_NE(s.traceparent[0].substr(3, 32), kValidTraceId);
  EXPECT_NE(s.traceparent[0].substr(3, 32), "0af7651916cd43dd8448eb211c80319c");
}

TEST_P(TraceTest, MissingTraceparentIsGenerated) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::set<std::string> traces;
  for (int i = 0; i < 4; ++i) {
    const std::string name = "none" + std::to_string(i);
    Seen s = echo(name, {"tracestate: lonely=1"});
    ASSERT_EQ(s.traceparent.size(), 1u);
    EXPECT_TRUE(well_formed_00(s.traceparent[0])) << s.traceparent[0];
    EXPECT_TRUE(s.tracestate.empty()) << "a tracestate without a traceparent starts no trace";
    traces.insert(s.traceparent[0].substr(3, 32));
    std::string line = access_line(name);
    EXPECT_NE(line.find(" trace=" + s.traceparent[0].substr(3, 32) + " "), std::string::npos) << line;
  }
  EXPECT_EQ(traces.size(), 4u) << "every request starts its own trace";
}

INSTANTIATE_TEST_SUITE_P(Protocols, TraceTest, ::testing::Values(Proto::H1, Proto::H2c),
                         [](const ::testing::TestParamInfo<Proto>& p) { return p.param == Proto::H1 ? "H1" : "H2c"; });

class TraceLogTest : public IntegrationTest {};

TEST_F(TraceLogTest, JsonAccessLogHasTheTraceId) {
  config_.proxy("access_log_format", quote("json"));
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/echo?json-trace", {"-H", std::string("traceparent: ") + kValid});
  ASSERT_EQ(r.status, 200) << r.error;
  HttpResponse g = http_get(port(), "/echo?json-generated");
  ASSERT_EQ(g.status, 200) << g.error;
  auto generated = echo_headers(parse_echo(g.body), "traceparent");
  ASSERT_EQ(generated.size(), 1u);
  stop_and_expect_clean();
  auto json_line = [&](const std::string& target) -> nlohmann::json {
    for (auto& l : log_lines_with("\"target\":\"" + target + "\"")) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_object()) return j;
    }
    return nullptr;
  };
  nlohmann::json a = json_line("/echo?json-trace"), b = json_line("/echo?json-generated");
  ASSERT_TRUE(a.is_object()) << corral_->log();
  ASSERT_TRUE(b.is_object()) << corral_->log();
  EXPECT_EQ(a.value("trace_id", ""), kValidTraceId) << a.dump();
  EXPECT_EQ(b.value("trace_id", ""), generated[0].substr(3, 32)) << b.dump();
}

TEST_F(TraceLogTest, CgiAndFastcgiProgramsSeeHttpTraceparent) {
  AppSpec& cgi = config_.app("cgi");
  cgi.kind = "cgi";
  cgi.command.clear();
  cgi.set("root", quote(std::string(CORRAL_SOURCE_DIR) + "/tests/apps/cgi")).workers(1);
  config_.route("cgi", "/cgi-bin");
  const bool have_fcgi = ::access(bin_path("corral-fcgi-hello").c_str(), X_OK) == 0;
  if (have_fcgi) {
    AppSpec& f = config_.app("c");
    f.kind = "fastcgi";
    f.command = {bin_path("corral-fcgi-hello")};
    f.workers(1);
    config_.route("c", "/hello");
  }
  ASSERT_NO_FATAL_FAILURE(start());
  const std::vector<std::string> headers = {"-H", std::string("traceparent: ") + kValid, "-H", "tracestate: a=1"};
  HttpResponse r = http_get(port(), "/cgi-bin/env.sh", headers);
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find(std::string("\nHTTP_TRACEPARENT=") + kValid + "\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\nHTTP_TRACESTATE=a=1\n"), std::string::npos) << r.body;
  r = http_get(port(), "/cgi-bin/env.sh", {"-H", "traceparent: nonsense", "-H", "tracestate: a=1"});
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.body.find("nonsense"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("HTTP_TRACESTATE="), std::string::npos) << r.body;
  std::smatch m;
  EXPECT_TRUE(std::regex_search(r.body, m, std::regex("\nHTTP_TRACEPARENT=(00-[0-9a-f]{32}-[0-9a-f]{16}-01)\n")))
      << r.body;
  if (!have_fcgi) GTEST_SKIP() << "corral-fcgi-hello not built (no libfcgi)";
  r = http_get(port(), "/hello?env", headers);
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find(std::string("HTTP_TRACEPARENT=") + kValid + "\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("HTTP_TRACESTATE=a=1\n"), std::string::npos) << r.body;
  r = http_get(port(), "/hello?env");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_TRUE(std::regex_search(r.body, m, std::regex("HTTP_TRACEPARENT=00-[0-9a-f]{32}-[0-9a-f]{16}-01\n"))) << r.body;
  EXPECT_NE(r.body.find("HTTP_TRACESTATE=<unset>\n"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace corral::itest
