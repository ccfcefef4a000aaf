#include "proxy/compress/filter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy/static/static_site.h"

namespace corral::proxy::compress {
namespace {

using D = ResponseFilter::Decision;

Policy policy() {
  conf::Route r;
  r.compress = {"br", "gzip"};
  return *make_policy(r);
}

// The request's Accept-Encoding as the frontends capture it (one field, or none).
AcceptEncoding request(std::string_view accept_encoding) {
  statics::StaticRequest r;
  if (!accept_encoding.empty()) r.capture("Accept-Encoding", accept_encoding, statics::StaticRequest::Fields::AcceptEncoding);
  return r.accept;
}

http1::ResponseHead response(std::vector<http1::Header> headers, int status = 200, uint64_t length = 5000) {
  http1::ResponseHead h;
  h.status = status;
  h.headers = std::move(headers);
  h.body = http1::BodyKind::ContentLength;
  h.content_length = length;
  h.has_content_length = true;
  h.headers.push_back({"Content-Length", "(the length)"});
  return h;
}

std::string field(const http1::ResponseHead& h, std::string_view name) {
  std::string out;
  for (auto& f : h.headers)
    if (f.name.size() == name.size() && std::equal(name.begin(), name.end(), f.name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        }))
      out += (out.empty() ? "" : "|") + std::string(f.value);
  return out;
}

TEST(CompressTypes, Patterns) {
  std::vector<std::string> p = policy().types;
  EXPECT_TRUE(type_matches(p, "text/html"));
  EXPECT_TRUE(type_matches(p, "text/html; charset=utf-8"));
  EXPECT_TRUE(type_matches(p, "TEXT/CSS"));
  EXPECT_TRUE(type_matches(p, "application/json"));
  EXPECT_TRUE(type_matches(p, "application/ld+json"));
  EXPECT_TRUE(type_matches(p, "application/problem+json; charset=utf-8"));
  EXPECT_TRUE(type_matches(p, "application/atom+xml"));
  EXPECT_TRUE(type_matches(p, "image/svg+xml"));
  EXPECT_TRUE(type_matches(p, "application/wasm"));
  EXPECT_FALSE(type_matches(p, "image/png"));
  EXPECT_FALSE(type_matches(p, "application/octet-stream"));
  EXPECT_FALSE(type_matches(p, "application/jsonx"));
  EXPECT_FALSE(type_matches(p, "application/+json"));
  EXPECT_FALSE(type_matches(p, "text"));
  EXPECT_FALSE(type_matches(p, ""));
  EXPECT_TRUE(type_matches({"*/*"}, "image/png"));
}

TEST(RequestFields, EveryAcceptEncodingFieldIsCaptured) {
  constexpr auto kAe = statics::StaticRequest::Fields::AcceptEncoding;
  statics::StaticRequest r;
  r.capture("accept-encoding", "gzip;q=0.5", kAe);
  r.capture("X", "y", kAe);
  r.capture("ACCEPT-ENCODING", "br", kAe);
  EXPECT_EQ(r.accept.q(Coding::Gzip), 500);
  EXPECT_EQ(r.accept.q(Coding::Br), 1000);
  statics::StaticRequest other;
  other.capture("X-Accept-Encoding", "br", kAe);
  EXPECT_FALSE(other.accept.present);
}

// A compressing route reads only Accept-Encoding: the conditional and range fields, which
// only a static answer uses, are not copied for it.
TEST(RequestFields, ACompressingRouteCapturesOnlyAcceptEncoding) {
  using F = statics::StaticRequest::Fields;
  auto fill = [](statics::StaticRequest& r, F which) {
    r.capture("Accept-Encoding", "gzip", which);
    r.capture("Range", "bytes=0-1", which);
    r.capture("If-Range", "\"a\"", which);
    r.capture("If-None-Match", "\"a\"", which);
    r.capture("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT", which);
  };
  statics::StaticRequest compressing;
  fill(compressing, F::AcceptEncoding);
  EXPECT_TRUE(compressing.accept.present);
  EXPECT_EQ(compressing.range, "");
  EXPECT_EQ(compressing.if_range, "");
  EXPECT_FALSE(compressing.has_if_none_match);
  EXPECT_EQ(compressing.if_none_match, "");
  EXPECT_EQ(compressing.if_modified_since, "");
  statics::StaticRequest serving;
  fill(serving, F::All);
  EXPECT_TRUE(serving.accept.present);
  EXPECT_EQ(serving.range, "bytes=0-1");
  EXPECT_EQ(serving.if_range, "\"a\"");
  EXPECT_EQ(serving.if_none_match, "\"a\"");
  EXPECT_EQ(serving.if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT");
  statics::StaticRequest none;
  fill(none, F::None);
  EXPECT_FALSE(none.accept.present);
}

TEST(Filter, CompressesAndRewritesTheHead) {
  ResponseFilter f;
  http1::ResponseHead out;
  auto head = response({{"Content-Type", "application/json"}, {"ETag", "\"abc\""}, {"Accept-Ranges", "bytes"}});
  ASSERT_EQ(f.start(policy(), request("gzip, deflate, br"), false, head, out), D::Compress);
  EXPECT_EQ(f.coding(), Coding::Br);
  EXPECT_EQ(field(out, "content-encoding"), "br");
  EXPECT_EQ(field(out, "vary"), "Accept-Encoding");
  EXPECT_EQ(field(out, "etag"), "W/\"abc\"");
  EXPECT_EQ(field(out, "accept-ranges"), "");
  EXPECT_EQ(field(out, "content-length"), "");
  EXPECT_EQ(out.body, http1::BodyKind::Chunked);
  EXPECT_FALSE(out.has_content_length);
  f.reset();
  EXPECT_FALSE(f.active());
}

TEST(Filter, ExistingVaryIsExtendedOnceAndWeakEtagKept) {
  ResponseFilter f;
  http1::ResponseHead out;
  auto head = response({{"Content-Type", "text/html"}, {"Vary", "Cookie"}, {"ETag", "W/\"v1\""}});
  ASSERT_EQ(f.start(policy(), request("gzip"), false, head, out), D::Compress);
  EXPECT_EQ(f.coding(), Coding::Gzip);
  EXPECT_EQ(field(out, "vary"), "Cookie|Accept-Encoding");
  EXPECT_EQ(field(out, "etag"), "W/\"v1\"");
  auto covered = response({{"Content-Type", "text/html"}, {"Vary", "Accept-Encoding, Cookie"}});
  ASSERT_EQ(f.start(policy(), request("gzip"), false, covered, out), D::Compress);
  EXPECT_EQ(field(out, "vary"), "Accept-Encoding, Cookie");
}

TEST(Filter, ClientWithoutAcceptEncodingGetsVaryOnly) {
  ResponseFilter f;
  http1::ResponseHead out;
  auto head = response({{"Content-Type", "text/plain"}, {"ETag", "\"abc\""}});
  EXPECT_EQ(f.start(policy(), request(""), false, head, out), D::PassVary);
  EXPECT_EQ(field(out, "vary"), "Accept-Encoding");
  EXPECT_EQ(field(out, "etag"), "\"abc\"");  // sent as is: the strong ETag stays
  EXPECT_EQ(field(out, "content-encoding"), "");
  EXPECT_EQ(out.body, http1::BodyKind::ContentLength);
  EXPECT_EQ(out.content_length, 5000u);
  EXPECT_EQ(f.start(policy(), request("gzip;q=0, br;q=0"), false, head, out), D::PassVary);
  EXPECT_EQ(f.start(policy(), request("identity"), false, head, out), D::PassVary);
  // HEAD is never compressed, but its GET may be: the Vary is the GET's.
  EXPECT_EQ(f.start(policy(), request("gzip"), true, head, out), D::PassVary);
  EXPECT_FALSE(f.active());
}

TEST(Filter, NeverCompressed) {
  ResponseFilter f;
  http1::ResponseHead out;
  const AcceptEncoding ae = request("gzip, br");
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 206), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 304), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 204), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 101), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}, {"Content-Encoding", "gzip"}}), out),
            D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false,
                    response({{"Content-Type", "text/html"}, {"Cache-Control", "public, No-Transform"}}), out),
            D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "image/png"}}), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({}), out), D::Pass);  // no type
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 200, 1023), out), D::Pass);
  EXPECT_EQ(f.start(policy(), ae, false, response({{"Content-Type", "text/html"}}, 200, 1024), out), D::Compress);
  auto empty = response({{"Content-Type", "text/html"}});
  empty.body = http1::BodyKind::None;
  EXPECT_EQ(f.start(policy(), ae, false, empty, out), D::Pass);
  f.reset();
}

TEST(Filter, UnknownLengthIsCompressedAndErrorsToo) {
  ResponseFilter f;
  http1::ResponseHead out;
  auto chunked = response({{"Content-Type", "text/event-stream"}});
  chunked.body = http1::BodyKind::Chunked;
  chunked.has_content_length = false;
  chunked.content_length = 0;
  chunked.headers.pop_back();
  EXPECT_EQ(f.start(policy(), request("gzip"), false, chunked, out), D::Compress);
  EXPECT_EQ(f.start(policy(), request("br"), false, response({{"Content-Type", "application/json"}}, 500), out),
            D::Compress);
  f.reset();
}

// Over the thread's brotli limit a br-preferring client gets gzip when it takes it, else the
// response as is (with Vary).
TEST(Filter, BrotliOverTheThreadLimitFallsBackToGzip) {
  std::thread([] {
    std::vector<std::unique_ptr<Encoder>> busy;
    for (int i = 0; i < kMaxBrotliPerThread; ++i) {
      busy.push_back(std::make_unique<Encoder>());
      ASSERT_TRUE(busy.back()->start(Coding::Br, 4));
    }
    ResponseFilter f;
    http1::ResponseHead out;
    auto head = response({{"Content-Type", "application/json"}});
    ASSERT_EQ(f.start(policy(), request("br, gzip"), false, head, out), D::Compress);
    EXPECT_EQ(f.coding(), Coding::Gzip);
    EXPECT_EQ(field(out, "content-encoding"), "gzip");
    EXPECT_EQ(f.start(policy(), request("br"), false, head, out), D::PassVary);
    EXPECT_EQ(field(out, "content-encoding"), "");
    EXPECT_EQ(field(out, "vary"), "Accept-Encoding");
    busy.pop_back();  // one brotli encoder free again
    EXPECT_EQ(f.start(policy(), request("br"), false, head, out), D::Compress);
    EXPECT_EQ(f.coding(), Coding::Br);
    f.reset();
  }).join();
}

TEST(Filter, RouteOrderAndLevels) {
  conf::Route r;
  r.compress = {"gzip", "br"};
  r.compress_types = {"application/json"};
  r.compress_min_size = 0;
  auto p = make_policy(r);
  ASSERT_TRUE(p);
  ResponseFilter f;
  http1::ResponseHead out;
  EXPECT_EQ(f.start(*p, request("br, gzip"), false, response({{"Content-Type", "application/json"}}), out),
            D::Compress);
  EXPECT_EQ(f.coding(), Coding::Gzip);
  EXPECT_EQ(f.start(*p, request("br, gzip"), false, response({{"Content-Type", "text/html"}}), out), D::Pass);
  f.reset();
  conf::Route off;
  EXPECT_EQ(make_policy(off), nullptr);
}

}  // namespace
}  // namespace corral::proxy::compress
