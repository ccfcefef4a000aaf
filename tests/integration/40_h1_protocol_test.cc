// HTTP/1.1 front end: strictness against smuggling shapes (400, never forwarded), limits
// (413, 431), timeouts (slowloris → 408/close), pipelining order, chunked request bodies,
// keep-alive reuse.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class H1ProtocolTest : public IntegrationTest {};

// ---- malformed requests -------------------------------------------------------------

struct Malformed {
  const char* name;
  const char* marker;  // a path that must never reach the app
  std::string bytes;
};

std::string head(const std::string& first_line) { return first_line + "\r\nHost: t.example\r\n"; }

std::vector<Malformed> malformed_cases() {
  return {
      {"ContentLengthAndChunked", "/mk-cl-te",
       head("POST /mk-cl-te HTTP/1.1") + "Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         "0\r\n\r\nGET /mk-cl-te-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"},
      {"BareLfLineEnds", "/mk-bare-lf", "GET /mk-bare-lf HTTP/1.1\nHost: t.example\n\n"},
      {"ObsFold", "/mk-obs-fold", head("GET /mk-obs-fold HTTP/1.1") + "X-Folded: a\r\n  b\r\n\r\n"},
      {"BadChunkSize", "/mk-bad-chunk",
       head("POST /mk-bad-chunk HTTP/1.1") + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
      {"ChunkDataWithoutCrlf", "/mk-chunk-nocrlf",
       head("POST /mk-chunk-nocrlf HTTP/1.1") + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"},
      {"DuplicateContentLength", "/mk-dup-cl",
       head("POST /mk-dup-cl HTTP/1.1") + "Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"},
      {"SpaceBeforeColon", "/mk-space-colon", head("GET /mk-space-colon HTTP/1.1") + "X-Bad : 1\r\n\r\n"},
      {"ChunkedNotLast", "/mk-te-not-last",
       head("POST /mk-te-not-last HTTP/1.1") + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
      {"CrInsideHeaderBlock", "/mk-lone-cr", head("GET /mk-lone-cr HTTP/1.1") + "\rX-Y: z\r\n\r\n"},
      {"NegativeContentLength", "/mk-neg-cl", head("POST /mk-neg-cl HTTP/1.1") + "Content-Length: -1\r\n\r\n"},
  };
}

class MalformedTest : public H1ProtocolTest, public ::testing::WithParamInterface<Malformed> {};

TEST_P(MalformedTest, Answers400AndNeverReachesTheApp) {
  ASSERT_NO_FATAL_FAILURE(start());
  const Malformed& m = GetParam();
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send(m.bytes));
  std::string got = c.read_until_close(5s);
  std::vector<RawResponse> rs = parse_responses(got);
  ASSERT_FALSE(rs.empty()) << "no response; received: " << got;
  EXPECT_EQ(rs[0].status, 400) << got;
  EXPECT_EQ(rs.size(), 1u) << "more than one response to a rejected request:\n" << got;
  EXPECT_TRUE(c.closed()) << "connection left open after a 400";
  // A good request afterwards still works (the daemon survived) and flushes the app's log.
  EXPECT_EQ(http_get(port(), "/").status, 200);
  stop_and_expect_clean();
  EXPECT_TRUE(app_lines_with(m.marker).empty()) << "the app saw a rejected request:\n"
                                                << app_lines_with(m.marker).front();
}

INSTANTIATE_TEST_SUITE_P(Smuggling, MalformedTest, ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<Malformed>& i) { return std::string(i.param.name); });

// ---- limits --------------------------------------------------------------------------

TEST_F(H1ProtocolTest, BodyAboveMaxBodySizeGets413) {
  config_.proxy("max_body_size", "1024");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse small = http_get(port(), "/echo?limit-small", {"--data-binary", std::string(1000, 'a')});
  EXPECT_EQ(small.status, 200) << small.error;
  HttpResponse big = http_get(port(), "/echo?mk-too-big", {"--data-binary", std::string(4000, 'a')});
  EXPECT_EQ(big.status, 413) << big.error;

  // Chunked: the size is only known while reading.
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  std::string chunk(1000, 'b');
  ASSERT_TRUE(c.send(head("POST /echo?mk-too-big-chunked HTTP/1.1") + "Transfer-Encoding: chunked\r\n\r\n" +
                     "3e8\r\n" + chunk + "\r\n3e8\r\n" + chunk + "\r\n0\r\n\r\n"));
  auto rs = c.read_responses(1, 5s);
  ASSERT_FALSE(rs.empty()) << c.received();
  EXPECT_EQ(rs[0].status, 413);
  stop_and_expect_clean();
  EXPECT_TRUE(app_lines_with("mk-too-big").empty());
}

TEST_F(H1ProtocolTest, ClientStillUploadingReadsIts413BeforeTheClose) {
  // The proxy answers as soon as the head shows the body is too large, while the client is
  // still sending it. Closing with unread bytes would make the kernel reset the connection,
  // which can destroy the 413 before the client reads it: the proxy half-closes and reads
  // on (lingering close) until the client is done. Nothing reaches the app.
  config_.proxy("max_body_size", "1024");
  ASSERT_NO_FATAL_FAILURE(start());
  for (int round = 0; round < 3; ++round) {
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port()));
    ASSERT_TRUE(c.send(head("POST /echo?mk-linger HTTP/1.1") + "Content-Length: 16777216\r\n\r\n"));
    std::thread upload([&c] {
      std::string block(64 * 1024, 'u');
      for (int i = 0; i < 256; ++i)
        if (!c.send(block)) break;
    });
    std::this_thread::sleep_for(100ms);  // the 413 is out and the upload goes on
    auto rs = c.read_responses(1, 10s);
    upload.join();
    ASSERT_FALSE(rs.empty()) << "round " << round << ": no response; received: " << c.received();
    EXPECT_EQ(rs[0].status, 413);
  }
  // curl without "Expect: 100-continue" sends the body at once; a reset fails its send
  // ("Send failure: Connection reset by peer") and it reports nothing of the answer.
  std::string file = rt_.path() + "/upload.bin";
  {
    std::ofstream f(file, std::ios::binary);
    std::string block(1 << 20, 'c');
    for (int i = 0; i < 16; ++i) f << block;
  }
  for (int round = 0; round < 3; ++round) {
    HttpResponse r = http_get(port(), "/echo?mk-linger-curl", {"-H", "Expect:", "--data-binary", "@" + file});
    EXPECT_EQ(r.status, 413) << "round " << round << ": " << r.error;
  }
  stop_and_expect_clean();
  EXPECT_TRUE(app_lines_with("mk-linger").empty());
}

TEST_F(H1ProtocolTest, HugeHeaderGets431) {
  config_.proxy("max_header_size", "4096");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse ok = http_get(port(), "/", {"-H", "X-Pad: " + std::string(1000, 'p')});
  EXPECT_EQ(ok.status, 200) << ok.error;
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send(head("GET /mk-huge-header HTTP/1.1") + "X-Pad: " + std::string(8000, 'p') + "\r\n\r\n"));
  auto rs = parse_responses(c.read_until_close(5s));
  ASSERT_FALSE(rs.empty()) << c.received();
  EXPECT_EQ(rs[0].status, 431);
  stop_and_expect_clean();
  EXPECT_TRUE(app_lines_with("mk-huge-header").empty());
}

TEST_F(H1ProtocolTest, TooManyHeadersGets431) {
  config_.proxy("max_header_count", "10");
  ASSERT_NO_FATAL_FAILURE(start());
  std::string req = head("GET /mk-many-headers HTTP/1.1");
  for (int i = 0; i < 30; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send(req + "\r\n"));
  auto rs = parse_responses(c.read_until_close(5s));
  ASSERT_FALSE(rs.empty()) << c.received();
  EXPECT_EQ(rs[0].status, 431);
}

// ---- timeouts ------------------------------------------------------------------------

TEST_F(H1ProtocolTest, SlowlorisIsCutOffByClientHeaderTimeout) {
  config_.proxy("client_header_timeout", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  const std::string req = head("GET /mk-slowloris HTTP/1.1") + "X-Slow: " + std::string(200, 's') + "\r\n\r\n";
  auto t0 = Clock::now();
  size_t sent = 0;
  // One byte every 300 ms; the whole head would take over a minute.
  while (!c.closed() && sent < req.size() && Clock::now() - t0 < 5s) {
    if (!c.send(req.substr(sent, 1))) break;
    ++sent;
    c.read_some(300ms);
  }
  if (!c.closed()) c.read_until_close(500ms);
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  EXPECT_TRUE(c.closed()) << "connection still open after " << elapsed.count() << " ms";
  EXPECT_LT(elapsed.count(), 2600) << "closed too late";
  EXPECT_GE(elapsed.count(), 700) << "closed before the timeout";
  if (!c.received().empty()) {
    auto rs = parse_responses(c.received());
    ASSERT_FALSE(rs.empty()) << c.received();
    EXPECT_EQ(rs[0].status, 408);
  }
}

// ---- pipelining, chunked bodies, keep-alive -----------------------------------------

TEST_F(H1ProtocolTest, PipelinedRequestsAreAnsweredInOrder) {
  config_.app("demo").workers(2).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  // The first is the slowest: answering out of order would put it last.
  std::string batch = head("GET /sleep?ms=300&n=1 HTTP/1.1") + "\r\n" + head("GET /echo?n=2 HTTP/1.1") + "\r\n" +
                      head("GET /sleep?ms=50&n=3 HTTP/1.1") + "\r\n" + head("GET /echo?n=4 HTTP/1.1") + "\r\n";
  ASSERT_TRUE(c.send(batch));
  auto rs = c.read_responses(4, 10s);
  ASSERT_EQ(rs.size(), 4u) << c.received();
  const char* targets[] = {"/sleep?ms=300&n=1", "/echo?n=2", "/sleep?ms=50&n=3", "/echo?n=4"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rs[i].status, 200);
    EXPECT_EQ(rs[i].header("X-Testapp-Target"), targets[i]) << "response " << i << " out of order";
  }
  EXPECT_FALSE(c.closed());
}

TEST_F(H1ProtocolTest, ChunkedRequestBodyIsEchoed) {
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  std::string part3(5000, 'z');
  ASSERT_TRUE(c.send(head("POST /echo HTTP/1.1") + "Transfer-Encoding: chunked\r\n\r\n" + "5\r\nhello\r\n" +
                     "1;ext=1\r\n \r\n" + "1388\r\n" + part3 + "\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto rs = c.read_responses(1, 5s);
  ASSERT_EQ(rs.size(), 1u) << c.received();
  EXPECT_EQ(rs[0].status, 200);
  nlohmann::json echo = parse_echo(rs[0].body);
  ASSERT_TRUE(echo.is_object()) << rs[0].body;
  EXPECT_EQ(echo["method"], "POST");
  EXPECT_EQ(echo["body"].get<std::string>(), "hello " + part3);
  // The app receives a well-framed body: either re-chunked or with its Content-Length.
  auto cl = echo_headers(echo, "Content-Length");
  auto te = echo_headers(echo, "Transfer-Encoding");
  EXPECT_TRUE((cl.size() == 1 && cl[0] == std::to_string(6 + part3.size())) || (te.size() == 1 && cl.empty()))
      << rs[0].body;
}

TEST_F(H1ProtocolTest, KeepAliveConnectionServesManyRequests) {
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(c.send(head("GET /echo?ka=" + std::to_string(i) + " HTTP/1.1") + "\r\n")) << "request " << i;
    auto rs = c.read_responses(static_cast<size_t>(i + 1), 5s);
    ASSERT_EQ(rs.size(), static_cast<size_t>(i + 1)) << "request " << i << ": " << c.received();
    EXPECT_EQ(rs.back().status, 200);
    EXPECT_EQ(rs.back().header("X-Testapp-Target"), "/echo?ka=" + std::to_string(i));
    ASSERT_FALSE(c.closed()) << "closed after request " << i;
  }
  // Connection: close is honoured.
  ASSERT_TRUE(c.send(head("GET / HTTP/1.1") + "Connection: close\r\n\r\n"));
  c.read_until_close(5s);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(parse_responses(c.received()).size(), 6u);
}

TEST_F(H1ProtocolTest, Http10WithoutKeepAliveIsClosed) {
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send("GET /pid HTTP/1.0\r\nHost: t.example\r\n\r\n"));
  std::string got = c.read_until_close(5s);
  EXPECT_TRUE(c.closed());
  auto rs = parse_responses(got);
  ASSERT_EQ(rs.size(), 1u) << got;
  EXPECT_EQ(rs[0].status, 200);
}

}  // namespace
}  // namespace corral::itest
