#include "common/http1/serializer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace corral::http1 {
namespace {

TEST(Http1Serializer, RequestHeadExactBytes) {
  std::vector<Header> hs = {{"Host", "a.example"}, {"Content-Length", "999"}, {"X-A", "1"},
                            {"transfer-encoding", "gzip"}};
  std::string out = "prefix|";
  append_request_head(out, "POST", "/p?q=1", hs, BodyFraming::content_length(42));
  EXPECT_EQ(out, "prefix|POST /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nContent-Length: 42\r\n\r\n");
  out.clear();
  append_request_head(out, "GET", "/", {}, BodyFraming::none());
  EXPECT_EQ(out, "GET / HTTP/1.1\r\n\r\n");
  out.clear();
  append_request_head(out, "PUT", "/", hs, BodyFraming::chunked());
  EXPECT_EQ(out, "PUT / HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(Http1Serializer, ResponseHeadUsesCanonicalReason) {
  std::string out;
  std::vector<Header> hs = {{"Server", "corral"}};
  append_response_head(out, 404, hs, BodyFraming::content_length(0));
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nServer: corral\r\nContent-Length: 0\r\n\r\n");
  out.clear();
  append_response_head(out, 200, {}, BodyFraming::none(), "Fine");
  EXPECT_EQ(out, "HTTP/1.1 200 Fine\r\n\r\n");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(503), "Service Unavailable");
  EXPECT_EQ(reason_phrase(799), "Unknown");
}

TEST(Http1Serializer, ChunkFraming) {
  std::string out;
  append_chunk_header(out, 255);
  out += "x";
  append_chunk_end(out);
  append_chunk_header(out, 4096);
  append_last_chunk(out);
  EXPECT_EQ(out, "ff\r\nx\r\n1000\r\n0\r\n\r\n");
}

TEST(Http1Serializer, CapacityIsReused) {
  std::string out;
  out.reserve(256);
  const char* data = out.data();
  for (int i = 0; i < 5; ++i) {
    out.clear();
    append_response_head(out, 200, {}, BodyFraming::content_length(5));
  }
  EXPECT_EQ(out.data(), data);
}

TEST(Http1Serializer, OutputParsesBack) {
  std::vector<Header> hs = {{"Host", "h"}, {"X-Obs", "caf\xe9"}, {"Empty", ""}};
  std::string out;
  append_request_head(out, "PATCH", "/r", hs, BodyFraming::chunked());
  append_chunk_header(out, 3);
  out += "abc";
  append_chunk_end(out);
  append_last_chunk(out);

  RequestParser p;
  RequestHead h;
  HeadResult r = p.parse(out, h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(h.method, "PATCH");
  ASSERT_EQ(h.headers.size(), 4u);
  EXPECT_EQ(h.headers[1].value, "caf\xe9");
  EXPECT_EQ(h.headers[2].value, "");
  EXPECT_EQ(h.body, BodyKind::Chunked);
  BodyDecoder d;
  d.start(h.body);
  BodyDecoder::Step st = d.step(std::string_view(out).substr(r.consumed));
  EXPECT_EQ(st.data, "abc");
  st = d.step(std::string_view(out).substr(r.consumed + st.consumed));
  EXPECT_TRUE(st.done);
}

}  // namespace
}  // namespace corral::http1
