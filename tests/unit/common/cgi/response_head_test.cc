// The CGI response header block: LF or CRLF lines, Status, Location (local vs client
// redirect), Content-Length, hop-by-hop fields dropped, malformed blocks rejected,
// split delivery.
#include "common/cgi/response_head.h"

#include <gtest/gtest.h>

namespace corral::cgi {
namespace {

using S = ResponseHeadParser::Status;

TEST(CgiResponseHead, DocumentWithLfLines) {
  ResponseHeadParser p;
  ResponseHead h;
  std::string in = "Content-Type: text/plain\nX-A:  b \n\nbody";
  ASSERT_EQ(p.parse(in, h), S::Done);
  EXPECT_EQ(in.substr(p.consumed()), "body");
  EXPECT_EQ(h.kind, ResponseKind::Document);
  EXPECT_EQ(h.status, 200);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_EQ(h.headers[1].first, "X-A");
  EXPECT_EQ(h.headers[1].second, "b");
}

TEST(CgiResponseHead, StatusAndCrlf) {
  ResponseHeadParser p;
  ResponseHead h;
  std::string in = "Status: 404 Nope\r\nContent-Type: text/html\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
  ASSERT_EQ(p.parse(in, h), S::Done);
  EXPECT_EQ(h.status, 404);
  EXPECT_EQ(h.reason, "Nope");
  EXPECT_EQ(h.content_length, 3u);
  ASSERT_EQ(h.headers.size(), 1u);  // Status, Content-Length and Connection are not passed on
  EXPECT_EQ(in.substr(p.consumed()), "abc");
}

TEST(CgiResponseHead, Redirects) {
  ResponseHeadParser p;
  ResponseHead h;
  ASSERT_EQ(p.parse("Location: /other?x\n\n", h), S::Done);
  EXPECT_EQ(h.kind, ResponseKind::LocalRedirect);
  EXPECT_EQ(h.location, "/other?x");
  p.reset();
  ASSERT_EQ(p.parse("Location: https://example.com/\n\n", h), S::Done);
  EXPECT_EQ(h.kind, ResponseKind::ClientRedirect);
  EXPECT_EQ(h.status, 302);
  p.reset();
  ASSERT_EQ(p.parse("Status: 301\nLocation: /moved\n\n", h), S::Done);
  EXPECT_EQ(h.kind, ResponseKind::ClientRedirect);
  EXPECT_EQ(h.status, 301);
  p.reset();
  ASSERT_EQ(p.parse("Location: //evil.example/\n\n", h), S::Done);
  EXPECT_EQ(h.kind, ResponseKind::ClientRedirect);  // protocol-relative is not local
}

TEST(CgiResponseHead, SplitDelivery) {
  std::string in = "Content-Type: a\r\nX: y\r\n\r\nrest";
  for (size_t cut = 1; cut < in.size() - 4; ++cut) {
    ResponseHeadParser p;
    ResponseHead h;
    std::string buf = in.substr(0, cut);
    ASSERT_EQ(p.parse(buf, h), S::Incomplete) << cut;
    buf = in;
    ASSERT_EQ(p.parse(buf, h), S::Done) << cut;
    EXPECT_EQ(buf.substr(p.consumed()), "rest") << cut;
  }
}

TEST(CgiResponseHead, Malformed) {
  for (const char* bad : {"\n\nbody", "\r\n\r\n", "no colon\n\n", ": empty name\n\n", "Bad Name: x\n\n",
                          "Status: abc\n\n", "Status: 99\n\n", "Status: 700 x\n\n", "Status: 2000\n\n",
                          "Content-Length: x\n\n", "X: a\x01b\n\n", "Status: 200\nStatus: 201\n\n",
                          "Location:\n\n"}) {
    ResponseHeadParser p;
    ResponseHead h;
    EXPECT_EQ(p.parse(bad, h), S::Error) << bad;
  }
  ResponseHeadParser p;
  ResponseHead h;
  EXPECT_EQ(p.parse(std::string(ResponseHeadParser::kMaxHeadSize + 10, 'a'), h), S::Error);
}

}  // namespace
}  // namespace corral::cgi
