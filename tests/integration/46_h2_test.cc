// HTTP/2 end to end: h2c prior knowledge and h2 over TLS through the same pipeline as
// HTTP/1.1 (multiplexed streams on several workers, large uploads), every malformed request
// reset with PROTOCOL_ERROR before it reaches the app, abuse answered with
// GOAWAY(ENHANCE_YOUR_CALM), a zero-window reader reset while others are served, and
// GOAWAY on graceful stop with open streams finishing. Malformed frames come from
// h2raw/h2raw.py (a hand-written frame writer on Debian's python3-hpack).
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

constexpr int kProtocolError = 1, kCancel = 8, kEnhanceYourCalm = 11;

class H2Test : public IntegrationTest {
 protected:
  nlohmann::json h2raw(const std::string& scenario) {
    ProcessResult r = run_process({"/usr/bin/python3", std::string(CORRAL_SOURCE_DIR) + "/tests/integration/h2raw/h2raw.py",
                                   "127.0.0.1", std::to_string(port()), scenario},
                                  30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << scenario << ": " << r.out << r.err;
    return j;
  }
  HttpResponse h2c_get(const std::string& path) {
    return curl({"--http2-prior-knowledge", "http://127.0.0.1:" + std::to_string(port()) + path});
  }
  void expect_still_serving() {
    HttpResponse r = h2c_get("/echo");
    EXPECT_EQ(r.status, 200) << "another client is still served: " << r.error;
  }
};

TEST_F(H2Test, PriorKnowledgeRequestReachesTheAppAsHttp11) {
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json j = h2raw("ok");
  EXPECT_EQ(j["status"]["1"], 200) << j.dump();
  HttpResponse r = curl({"--http2-prior-knowledge", "-H", "Cookie: a=1", "-H", "Cookie: b=2",
                         "http://127.0.0.1:" + std::to_string(port()) + "/echo"});
  ASSERT_EQ(r.status, 200) << r.error;
  nlohmann::json echo = parse_echo(r.body);
  ASSERT_TRUE(echo.is_object()) << r.body;
  EXPECT_EQ(echo["version"], "HTTP/1.1");
  EXPECT_EQ(echo_headers(echo, "host"), std::vector<std::string>{"127.0.0.1:" + std::to_string(port())});
  EXPECT_EQ(echo_headers(echo, "cookie"), std::vector<std::string>{"a=1; b=2"});
  EXPECT_EQ(echo_headers(echo, "x-forwarded-proto"), std::vector<std::string>{"http"});
}

TEST_F(H2Test, MultiplexedStreamsRunOnSeveralWorkersAtOnce) {
  config_.app("demo").workers(4).concurrency(1).queue_size(100);
  ASSERT_NO_FATAL_FAILURE(start());
  // 8 streams of 300 ms on one connection: in parallel on 4 workers, about 2 rounds.
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult r = run_process({"h2load", "-n", "8", "-c", "1", "-m", "8",
                                 "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=300"},
                                30s);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("8 succeeded"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 2xx"), std::string::npos) << r.out;
  EXPECT_LT(took, 1800ms) << "streams of one connection were not spread over the workers";
  for (auto& s : CorralProcess::worker_sockets(corral_->status(), "demo")) {
    HttpResponse m = unix_get(s, "/maxinflight");
    EXPECT_EQ(m.body, "1") << "concurrency 1 holds for HTTP/2 streams too";
  }
}

TEST_F(H2Test, LargeUploadWithFlowControl) {
  config_.proxy("max_body_size", quote("8MiB"));
  ASSERT_NO_FATAL_FAILURE(start());
  std::string file = rt_.path() + "/upload.bin";
  {
    std::ofstream f(file, std::ios::binary);
    std::string block(1 << 16, 'u');
    for (int i = 0; i < 48; ++i) f << block;  // 3 MiB: far beyond the 256 KiB stream window
  }
  ProcessResult r = run_process({"nghttp", "-n", "-s", "-d", file, "http://127.0.0.1:" + std::to_string(port()) + "/echo"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  HttpResponse c = curl({"--http2-prior-knowledge", "--data-binary", "@" + file,
                         "http://127.0.0.1:" + std::to_string(port()) + "/echo"});
  EXPECT_EQ(c.status, 200) << c.error;
  EXPECT_NE(c.body.find(std::string(1000, 'u')), std::string::npos);
  EXPECT_EQ(log_lines_with("\"POST /echo HTTP/2.0\" 200").size(), 2u);
  // Over max_body_size: 413, and the app never sees it.
  for (int i = 0; i < 48; ++i) std::ofstream(file, std::ios::app | std::ios::binary) << std::string(1 << 17, 'v');
  c = curl({"--http2-prior-knowledge", "--data-binary", "@" + file, "http://127.0.0.1:" + std::to_string(port()) + "/echo?toobig"});
  EXPECT_EQ(c.status, 413) << c.error;
  EXPECT_TRUE(app_lines_with("toobig").empty());
}

TEST_F(H2Test, MalformedRequestsAreResetAndNeverReachTheApp) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* s : {"uppercase_name", "crlf_value", "nul_value", "lf_name", "connection_header", "keep_alive_header",
                        "proxy_connection_header", "transfer_encoding_header", "upgrade_header", "te_gzip",
                        "host_mismatch", "bad_path", "cl_longer", "cl_shorter"}) {
    nlohmann::json j = h2raw(s);
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j["rst"], nlohmann::json::array({nlohmann::json::array({1, kProtocolError})})) << s << ": " << j.dump();
    EXPECT_TRUE(j["status"].empty()) << s << ": " << j.dump();
    EXPECT_TRUE(app_lines_with(std::string("h2raw-") + s).empty()) << s << " reached the app";
  }
  expect_still_serving();
}

// One test per flood (each starts its own corral): the python frame writer is the slow
// part, and eight floods in one test came close to the per-test timeout on a loaded machine.
class H2FloodTest : public H2Test, public ::testing::WithParamInterface<const char*> {};

TEST_P(H2FloodTest, GetsGoawayEnhanceYourCalm) {
  config_.app("demo").workers(2).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string s = GetParam();
  nlohmann::json j = h2raw(s);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["goaway"], kEnhanceYourCalm) << s << ": " << j.dump();
  if (s != "rapid_reset") {
    EXPECT_TRUE(app_lines_with("h2raw-" + s).empty()) << s;
  }
  expect_still_serving();
  if (s != "rapid_reset") return;
  // Rapid reset: requests the client cancelled did not leave worker slots busy.
  EXPECT_TRUE(wait_status(
      [](const nlohmann::json& st) {
        for (auto& a : st["apps"])
          for (auto& w : a["workers"])
            if (w.value("in_flight", 0) != 0) return false;
        return true;
      },
      5s))
      << corral_->status().dump();
}

INSTANTIATE_TEST_SUITE_P(Floods, H2FloodTest,
                         ::testing::Values("rapid_reset", "continuation_flood", "ping_flood", "settings_flood",
                                           "priority_flood", "unknown_flood", "window_update_flood",
                                           "empty_data_flood"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

TEST_F(H2Test, ZeroWindowReaderIsResetAndOthersAreServed) {
  config_.proxy("client_body_timeout", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  std::thread slow([&] {
    nlohmann::json j = h2raw("zero_window");
    EXPECT_EQ(j["status"]["1"], 200) << j.dump();
    EXPECT_EQ(j["rst"], nlohmann::json::array({nlohmann::json::array({1, kCancel})})) << j.dump();
  });
  std::this_thread::sleep_for(300ms);
  expect_still_serving();
  slow.join();
}

class H2ClientGoneTest : public H2Test, public ::testing::WithParamInterface<const char*> {};

TEST_P(H2ClientGoneTest, CancelsQueuedAndInFlightRequests) {
  // A client resets its streams (or closes its connection) while one request keeps a worker
  // busy, one's response streams and one is queued: the workers are freed at once (the
  // worker connections closed), the queued request never reaches a worker, and each gets its
  // access-log line (499 before a response head, else the worker's status).
  config_.app("demo").workers(2).concurrency(1).timeout("60s").queue_timeout("60s");
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string s = GetParam();
  nlohmann::json j = h2raw(s);
  EXPECT_EQ(j["status"]["3"], 200) << j.dump();
  EXPECT_FALSE(j["status"].contains("1")) << j.dump();
  // Both workers take a request each that they would hold for 30 s (or until their 64 MiB
  // response is read): served at once only when the aborted requests freed both.
  std::vector<HttpResponse> rs = parallel(2, [&](int i) {
    return curl({"http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=2000&m=" + s + "-after" + std::to_string(i)},
                10s);
  });
  for (auto& r : rs) EXPECT_EQ(r.status, 200) << r.error;
  auto logged = [&](const std::string& what) {
    for (int i = 0; i < 100; ++i, std::this_thread::sleep_for(50ms))
      for (auto& l : log_lines_with("m=" + s + "-" + what + " HTTP/"))
        if (l.find("testapp pid=") == std::string::npos) return l;
    return std::string();
  };
  auto worker_of = [](const std::string& line) {
    size_t w = line.find(" worker=");
    return w == std::string::npos ? std::string() : line.substr(w, line.find(' ', w + 1) - w);
  };
  // Side by side, so on both workers: the two were free.
  EXPECT_NE(worker_of(logged("after0")), worker_of(logged("after1"))) << logged("after0") << "\n" << logged("after1");
  EXPECT_NE(logged("busy").find("\" 499 "), std::string::npos) << logged("busy");
  EXPECT_NE(logged("queued").find("\" 499 "), std::string::npos) << logged("queued");
  EXPECT_NE(logged("stream").find("\" 200 "), std::string::npos) << logged("stream");
  EXPECT_TRUE(app_lines_with("m=" + s + "-queued").empty()) << "a request whose client had gone reached a worker";
}

INSTANTIATE_TEST_SUITE_P(ResetOrClose, H2ClientGoneTest, ::testing::Values("gone_reset", "gone_close"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

TEST_F(H2Test, StreamsOneAfterAnotherShareNothing) {
  ASSERT_NO_FATAL_FAILURE(start());
  // Closed streams are recycled for the next ones on the connection: a POST with cookies, a
  // custom header and a body, then a bare GET, a reset stream, and another GET.
  nlohmann::json j = h2raw("recycle");
  auto echo_of = [&](const char* sid) {
    EXPECT_EQ(j["status"][sid], 200) << sid << ": " << j.dump();
    nlohmann::json e = parse_echo(j["body"].value(sid, ""));
    EXPECT_TRUE(e.is_object()) << sid << ": " << j.dump();
    return e;
  };
  nlohmann::json first = echo_of("1");
  EXPECT_EQ(first["method"], "POST");
  EXPECT_EQ(first["body"], "hello");
  EXPECT_EQ(echo_headers(first, "cookie"), std::vector<std::string>{"a=1"});
  EXPECT_EQ(echo_headers(first, "x-one"), std::vector<std::string>{"1"});
  for (const char* sid : {"3", "7"}) {
    nlohmann::json e = echo_of(sid);
    EXPECT_EQ(e["method"], "GET") << sid;
    EXPECT_EQ(e["target"], std::string("/echo?s=") + sid);
    EXPECT_EQ(e["body"], "") << sid;
    EXPECT_TRUE(echo_headers(e, "cookie").empty()) << sid;
    EXPECT_TRUE(echo_headers(e, "x-one").empty()) << sid;
    EXPECT_TRUE(echo_headers(e, "content-length").empty()) << sid;
  }
  EXPECT_EQ(echo_headers(echo_of("7"), "user-agent"), std::vector<std::string>{"h2raw"});
  ASSERT_EQ(j["rst"].size(), 1u) << j.dump();
  EXPECT_EQ(j["rst"][0][0], 5);
  EXPECT_EQ(j["rst"][0][1], kProtocolError);
}

TEST_F(H2Test, GracefulStopLetsOpenStreamsFinish) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r;
  std::thread t([&] { r = h2c_get("/sleep?ms=800"); });
  std::this_thread::sleep_for(300ms);
  stop_and_expect_clean();
  t.join();
  EXPECT_EQ(r.status, 200) << r.error;
}

}  // namespace
}  // namespace corral::itest
