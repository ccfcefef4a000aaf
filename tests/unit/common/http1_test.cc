// RequestParser / ResponseParser behaviour that the corpus does not show: resumption, reuse,
// limits, early rejection, response framing rules.
#include "common/http1/parser.h"

#include <gtest/gtest.h>

#include <string>

namespace corral::http1 {
namespace {

HeadResult parse_req(std::string_view raw, RequestHead& h, Limits limits = {}) {
  RequestParser p(limits);
  return p.parse(raw, h);
}

HeadResult parse_resp(std::string_view raw, std::string_view method, ResponseHead& h) {
  ResponseParser p;
  return p.parse(raw, method, h);
}

TEST(Http1Request, ConsumedStopsAtHeadSoPipelinedBytesRemain) {
  const std::string raw = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestParser p;
  RequestHead h;
  HeadResult r = p.parse(raw, h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, raw.size() / 2);
  EXPECT_EQ(h.target, "/a");
  p.reset();
  r = p.parse(std::string_view(raw).substr(r.consumed), h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(h.target, "/b");
}

TEST(Http1Request, UpgradeIsSetOnlyForOneUpgradeFieldWithConnectionUpgrade) {
  auto upgrade = [](std::string_view fields) {
    RequestHead h;
    std::string raw = "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "\r\n";
    EXPECT_EQ(parse_req(raw, h).status, ParseStatus::Done) << fields;
    return std::string(h.upgrade);
  };
  EXPECT_EQ(upgrade("Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"), "websocket");
  EXPECT_EQ(upgrade("Upgrade: websocket\r\n"), "");
  EXPECT_EQ(upgrade("Connection: upgrade\r\n"), "");
  EXPECT_EQ(upgrade("Upgrade: websocket\r\nUpgrade: foo\r\nConnection: upgrade\r\n"), "");
  // The parser reuses the head: a later request without Upgrade has none.
  RequestParser p;
  RequestHead h;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: a\r\nConnection: upgrade\r\n\r\n", h).status,
            ParseStatus::Done);
  EXPECT_EQ(h.upgrade, "a");
  p.reset();
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", h).status, ParseStatus::Done);
  EXPECT_EQ(h.upgrade, "");
}

TEST(Http1Request, ViewsPointIntoTheCallerBuffer) {
  const std::string raw = "GET /p HTTP/1.1\r\nHost: h\r\nX-A:  v  \r\n\r\n";
  RequestHead h;
  ASSERT_EQ(parse_req(raw, h).status, ParseStatus::Done);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[1].name, "X-A");
  EXPECT_EQ(h.headers[1].value, "v");
  EXPECT_GE(h.headers[1].value.data(), raw.data());
  EXPECT_LT(h.headers[1].value.data(), raw.data() + raw.size());
  EXPECT_EQ(h.method.data(), raw.data());
}

TEST(Http1Request, HeaderVectorIsReusedWithoutReallocation) {
  const std::string raw = "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n";
  RequestParser p;
  RequestHead h;
  ASSERT_EQ(p.parse(raw, h).status, ParseStatus::Done);
  const Header* first = h.headers.data();
  for (int i = 0; i < 10; ++i) {
    p.reset();
    ASSERT_EQ(p.parse(raw, h).status, ParseStatus::Done);
    EXPECT_EQ(h.headers.data(), first);
    EXPECT_EQ(h.headers.size(), 3u);
  }
}

TEST(Http1Request, ResumesAfterIncompleteAndBufferMayMove) {
  const std::string raw = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
  RequestParser p;
  RequestHead h;
  std::string buf;
  HeadResult r;
  for (char c : raw) {
    buf.push_back(c);
    std::string moved = buf;  // a different address each time
    r = p.parse(moved, h);
    if (r.status != ParseStatus::Incomplete) break;
  }
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, raw.size() - 4);
  EXPECT_EQ(h.content_length, 4u);
}

TEST(Http1Request, ErrorIsSticky) {
  RequestParser p;
  RequestHead h;
  EXPECT_EQ(p.parse("GET / HTTP/1.1\n", h).status, ParseStatus::Error);
  HeadResult r = p.parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error.status, 400);
  p.reset();
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", h).status, ParseStatus::Done);
}

TEST(Http1Request, BareLfAndCrAreRejectedBeforeTheHeadEnds) {
  RequestHead h;
  RequestParser p;
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\nX", h).status, ParseStatus::Error);
  RequestParser q;
  HeadResult r = q.parse("GET / HTTP/1.1\r\nHost: x\r\n\rX", h);
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error.status, 400);
  RequestParser s;
  EXPECT_EQ(s.parse("\r\n\r\n", h).status, ParseStatus::Error);
}

TEST(Http1Request, IncompleteUntilTheBlankLine) {
  RequestHead h;
  EXPECT_EQ(parse_req("GET / HTTP/1.1\r\nHost: x\r\n", h).status, ParseStatus::Incomplete);
  EXPECT_EQ(parse_req("GET / HTTP/1.1\r\nHost: x\r\n\r", h).status, ParseStatus::Incomplete);
  EXPECT_EQ(parse_req("\r", h).status, ParseStatus::Incomplete);
  EXPECT_EQ(parse_req("", h).status, ParseStatus::Incomplete);
}

TEST(Http1Request, SizeLimits) {
  Limits small{64, 3};
  RequestHead h;
  // The request line alone passes the limit: 414, even before it ends.
  HeadResult r = parse_req("GET /" + std::string(80, 'a'), h, small);
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error.status, 414);
  r = parse_req("GET /" + std::string(80, 'a') + " HTTP/1.1\r\n", h, small);
  EXPECT_EQ(r.error.status, 414);
  // The fields pass it: 431, with or without a complete head.
  r = parse_req("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(60, 'b'), h, small);
  EXPECT_EQ(r.error.status, 431);
  r = parse_req("GET / HTTP/1.1\r\nHost: x\r\nX: " + std::string(60, 'b') + "\r\n\r\n", h, small);
  EXPECT_EQ(r.error.status, 431);
  // Exactly at the limit is fine.
  std::string exact = "GET / HTTP/1.1\r\nHost: x\r\nX: \r\n\r\n";
  exact.insert(exact.size() - 4, std::string(64 - exact.size(), 'c'));
  ASSERT_EQ(exact.size(), 64u);
  EXPECT_EQ(parse_req(exact, h, small).status, ParseStatus::Done);
  r = parse_req("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", h, small);
  EXPECT_EQ(r.error.status, 431);
  EXPECT_EQ(parse_req("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n", h, small).status, ParseStatus::Done);
}

TEST(Http1Request, KeepAliveMatrix) {
  struct Case {
    const char* raw;
    bool keep;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
  };
  for (const Case& c : cases) {
    RequestHead h;
    ASSERT_EQ(parse_req(c.raw, h).status, ParseStatus::Done) << c.raw;
    EXPECT_EQ(h.keep_alive, c.keep) << c.raw;
  }
}

TEST(Http1Request, AuthorityIsExposed) {
  RequestHead h;
  ASSERT_EQ(parse_req("GET https://a.example:8443/x HTTP/1.1\r\nHost: a.example:8443\r\n\r\n", h).status,
            ParseStatus::Done);
  EXPECT_EQ(h.authority, "a.example:8443");
  EXPECT_EQ(h.host, "a.example:8443");
  ASSERT_EQ(parse_req("GET /x HTTP/1.1\r\nHost: b\r\n\r\n", h).status, ParseStatus::Done);
  EXPECT_EQ(h.authority, "");
  EXPECT_EQ(h.host, "b");
  // RFC 9112 §3.2.2: the absolute-form authority wins over a different Host field.
  ASSERT_EQ(parse_req("GET http://a.example:80/ HTTP/1.1\r\nHost: b.example\r\n\r\n", h).status, ParseStatus::Done);
  EXPECT_EQ(h.authority, "a.example:80");
  EXPECT_EQ(h.host, "a.example:80");
  // The Host field is still required and checked.
  EXPECT_EQ(parse_req("GET http://a.example/ HTTP/1.1\r\n\r\n", h).error.status, 400);
  EXPECT_EQ(parse_req("GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n", h).error.status, 400);
}

TEST(Http1Request, TokenBounds) {
  RequestHead h;
  std::string method(kMaxMethodSize, 'M');
  EXPECT_EQ(parse_req(method + " / HTTP/1.1\r\nHost: x\r\n\r\n", h).status, ParseStatus::Done);
  HeadResult r = parse_req(method + "M / HTTP/1.1\r\nHost: x\r\n\r\n", h);
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error.status, 501);
  std::string name(kMaxFieldNameSize, 'n');
  EXPECT_EQ(parse_req("GET / HTTP/1.1\r\nHost: x\r\n" + name + ": v\r\n\r\n", h).status, ParseStatus::Done);
  r = parse_req("GET / HTTP/1.1\r\nHost: x\r\n" + name + "n: v\r\n\r\n", h);
  EXPECT_EQ(r.status, ParseStatus::Error);
  EXPECT_EQ(r.error.status, 431);
}

TEST(Http1Request, DerivedFieldsAreResetBetweenMessages) {
  RequestParser p;
  RequestHead h;
  ASSERT_EQ(p.parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", h).status,
            ParseStatus::Done);
  EXPECT_TRUE(h.expect_continue);
  p.reset();
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", h).status, ParseStatus::Done);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_EQ(h.body, BodyKind::None);
  EXPECT_EQ(h.content_length, 0u);
}

TEST(Http1Response, ContentLengthChunkedAndClose) {
  ResponseHead h;
  HeadResult r = parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", "GET", h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.reason, "OK");
  EXPECT_EQ(h.body, BodyKind::ContentLength);
  EXPECT_EQ(h.content_length, 12u);
  EXPECT_TRUE(h.keep_alive);

  ASSERT_EQ(parse_resp("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", h).status,
            ParseStatus::Done);
  EXPECT_EQ(h.body, BodyKind::Chunked);

  ASSERT_EQ(parse_resp("HTTP/1.1 200 \r\nServer: x\r\n\r\n", "GET", h).status, ParseStatus::Done);
  EXPECT_EQ(h.reason, "");
  EXPECT_EQ(h.body, BodyKind::UntilClose);
  EXPECT_FALSE(h.keep_alive);

  ASSERT_EQ(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET", h).status, ParseStatus::Done);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.version_minor, 0);
}

TEST(Http1Response, NoBodyCases) {
  ResponseHead h;
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD", h).status, ParseStatus::Done);
  EXPECT_EQ(h.body, BodyKind::None);
  EXPECT_EQ(h.content_length, 99u);
  ASSERT_EQ(parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET", h).status,
            ParseStatus::Done);
  EXPECT_EQ(h.body, BodyKind::None);
  ASSERT_EQ(parse_resp("HTTP/1.1 204 No Content\r\n\r\n", "GET", h).status, ParseStatus::Done);
  EXPECT_EQ(h.body, BodyKind::None);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(parse_resp("HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT", h).status, ParseStatus::Done);
  EXPECT_EQ(h.body, BodyKind::None);
}

TEST(Http1Response, HeadResponseRecordsWhetherALengthWasSent) {
  // RFC 9110 §9.3.2: the length a HEAD response announces is the GET's; a proxy passes it
  // on only when the worker sent one, so "none" must differ from "Content-Length: 0".
  ResponseHead h;
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n", "HEAD", h).status, ParseStatus::Done);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 21u);
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HEAD", h).status, ParseStatus::Done);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.content_length, 0u);
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", h).status,
            ParseStatus::Done);
  EXPECT_FALSE(h.has_content_length);
  EXPECT_EQ(h.body, BodyKind::None);
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "HEAD", h).status, ParseStatus::Done);
  EXPECT_FALSE(h.has_content_length);
  ASSERT_EQ(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", h).status, ParseStatus::Done);
  EXPECT_TRUE(h.has_content_length);
  EXPECT_EQ(h.body, BodyKind::ContentLength);
}

TEST(Http1Response, InformationalThenFinal) {
  const std::string raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  ResponseParser p;
  ResponseHead h;
  HeadResult r = p.parse(raw, "POST", h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(h.status, 100);
  EXPECT_EQ(h.body, BodyKind::None);
  p.reset();
  r = p.parse(std::string_view(raw).substr(r.consumed), "POST", h);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(h.status, 201);
  EXPECT_EQ(h.body, BodyKind::ContentLength);
}

TEST(Http1Response, RejectionsAre502) {
  const char* bad[] = {
      "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",             // no SP before the (empty) reason
      "HTTP/1.1 20 OK\r\n\r\n",                                // two-digit status
      "HTTP/1.1 099 Low\r\n\r\n",                              // below 100
      "HTTP/2.0 200 OK\r\n\r\n",                               // version
      "HTTP/1.1 200 O\x01K\r\n\r\n",                           // control char in reason
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "\r\nHTTP/1.1 200 OK\r\n\r\n",                             // no leading CRLF for responses
      "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
  };
  for (const char* raw : bad) {
    ResponseHead h;
    HeadResult r = parse_resp(raw, "GET", h);
    EXPECT_EQ(r.status, ParseStatus::Error) << raw;
    EXPECT_EQ(r.error.status, 502) << raw;
  }
}

TEST(Http1Response, ByteAtATimeMatchesWhole) {
  const std::string raw = "HTTP/1.1 200 OK\r\nServer: w\r\nContent-Length: 3\r\nConnection: close\r\n\r\n";
  ResponseParser p;
  ResponseHead h;
  HeadResult r;
  for (size_t i = 1; i <= raw.size(); ++i) {
    r = p.parse(std::string_view(raw).substr(0, i), "GET", h);
    if (i < raw.size()) {
      ASSERT_EQ(r.status, ParseStatus::Incomplete) << i;
    }
  }
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.consumed, raw.size());
  EXPECT_EQ(h.headers.size(), 3u);
  EXPECT_FALSE(h.keep_alive);
}

}  // namespace
}  // namespace corral::http1
