// A CGI header block corral-worker accepts always becomes a response head the proxy can
// read: the proxy parses worker responses with at most 64 KiB and 256 fields
// (proxy/upstream/http1_client.cc). Found by fuzz_cgi_head: 300 short CGI lines made a
// head of 300 fields that the proxy refused.
#include <gtest/gtest.h>

#include <string>

#include "common/cgi/response_head.h"
#include "common/http1/parser.h"
#include "workers/response_encoder.h"

namespace corral::worker {
namespace {

using S = cgi::ResponseHeadParser::Status;

http1::HeadResult parse_at_proxy(const cgi::ResponseHead& h, http1::ResponseHead& out, std::string& wire) {
  ResponseEncoder enc(false, false);
  enc.head(wire, h.status, h.reason, h.headers, h.content_length);
  http1::Limits proxy_limits;
  proxy_limits.max_head_size = 64 * 1024;
  proxy_limits.max_header_count = 256;
  http1::ResponseParser p(proxy_limits);
  return p.parse(wire, "GET", out);
}

TEST(CgiHeadLimits, TooManyLinesAreRefusedByTheWorker) {
  std::string block;
  for (int i = 0; i < 300; ++i) block += "a:\n";
  block += "\n";
  cgi::ResponseHeadParser p;
  cgi::ResponseHead h;
  EXPECT_EQ(p.parse(block, h), S::Error);
  EXPECT_STREQ(p.error(), "too many CGI header lines");
}

// Found by fuzz_cgi_head and fuzz_fastcgi: a field name longer than common/http1 accepts
// (http1::kMaxFieldNameSize) made a head the proxy refused (cgi) or sent on (fastcgi).
TEST(CgiHeadLimits, ALongerFieldNameThanHttp1TakesIsRefused) {
  cgi::ResponseHeadParser p;
  cgi::ResponseHead h;
  EXPECT_EQ(p.parse(std::string(http1::kMaxFieldNameSize + 1, 'n') + ": v\n\n", h), S::Error);
  EXPECT_STREQ(p.error(), "CGI header name too long");
  cgi::ResponseHeadParser q;
  ASSERT_EQ(q.parse(std::string(http1::kMaxFieldNameSize, 'n') + ": v\n\n", h), S::Done);
  http1::ResponseHead out;
  std::string wire;
  EXPECT_EQ(parse_at_proxy(h, out, wire).status, http1::ParseStatus::Done);
}

TEST(CgiHeadLimits, TheLargestAcceptedBlocksParseAtTheProxy) {
  // Most lines, each as short as can be (LF ends: the re-framed head grows most).
  std::string many;
  for (size_t i = 0; i < cgi::ResponseHeadParser::kMaxFields; ++i) many += "a:\n";
  many += "\n";
  // Most bytes, in the most lines.
  using P = cgi::ResponseHeadParser;
  std::string big = "Status: 299 " + std::string(100, 'r') + "\n";
  const size_t per_line = (P::kMaxHeadSize - big.size() - 1) / (P::kMaxFields - 1);  // "b:" value "\n"
  const std::string value(per_line - 3, 'v');
  for (size_t i = 1; i < P::kMaxFields; ++i) big += "b:" + value + "\n";
  big += "\n";
  for (const std::string& block : {many, big}) {
    cgi::ResponseHeadParser p;
    cgi::ResponseHead h;
    ASSERT_EQ(p.parse(block, h), S::Done) << block.size();
    http1::ResponseHead out;
    std::string wire;
    http1::HeadResult r = parse_at_proxy(h, out, wire);
    ASSERT_EQ(r.status, http1::ParseStatus::Done) << r.error.reason << " (" << wire.size() << " bytes)";
    EXPECT_EQ(out.status, h.status);
  }
}

}  // namespace
}  // namespace corral::worker
