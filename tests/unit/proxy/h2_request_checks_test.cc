// The HTTP/2 request-head rules (RFC 9113 §8.3.1, §8.5) and stream identifier rules
// (§5.1.1) the front end adds to nghttp2's, and the promise behind them: a head they accept
// makes a request line and Host field that corral's strict HTTP/1.1 parser accepts.
#include "proxy/frontend/h2_request_checks.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/http1/parser.h"

namespace corral::proxy::h2 {
namespace {

RequestFields get(std::string_view path, std::string_view authority = "example.com") {
  return {"GET", "https", path, authority, "", ""};
}

HeadVerdict verdict(const RequestFields& f) { return check_request_head(f).verdict; }

TEST(H2RequestChecks, AcceptsOrdinaryRequests) {
  EXPECT_EQ(verdict(get("/")), HeadVerdict::Ok);
  EXPECT_EQ(verdict(get("/a/b?c=d&e=%2F;x=1:2@3!$&'()*+,~._-")), HeadVerdict::Ok);
  EXPECT_EQ(verdict(get("/", "example.com:8443")), HeadVerdict::Ok);
  EXPECT_EQ(verdict(get("/", "[::1]:8080")), HeadVerdict::Ok);
  EXPECT_EQ(verdict(get("/", "127.0.0.1")), HeadVerdict::Ok);
  EXPECT_EQ(verdict({"GET", "HTTP", "/", "", "example.com", ""}), HeadVerdict::Ok);  // Host only
  EXPECT_EQ(verdict({"GET", "https", "/", "Example.COM", "example.com", ""}), HeadVerdict::Ok);
  EXPECT_EQ(verdict({"PROPFIND", "https", "/", "a", "", ""}), HeadVerdict::Ok);
  // RFC 8441 extended CONNECT: a tunnel request with an origin-form :path.
  EXPECT_EQ(verdict({"CONNECT", "https", "/chat", "a", "", "websocket"}), HeadVerdict::Ok);
}

TEST(H2RequestChecks, PathMustBeAValidOriginForm) {
  for (const char* p : {"", "a", "http://example.com/", "*x", "/a b", "/a\x01", "/a\x7f", "/\xc3\xa9", "/a#f", "/%zz",
                        "/%4", "/\"", "/<", "/>", "/\\", "/^", "/`", "/{", "/|", "/}", "/[", "/]"})
    EXPECT_EQ(verdict(get(p)), HeadVerdict::Malformed) << p;
  EXPECT_EQ(verdict(get("*")), HeadVerdict::Malformed) << "* is for OPTIONS only";
}

TEST(H2RequestChecks, SchemeIsHttpOrHttps) {
  EXPECT_EQ(verdict({"GET", "ftp", "/", "a", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"GET", "", "/", "a", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"GET", "httpx", "/", "a", "", ""}), HeadVerdict::Malformed);
}

TEST(H2RequestChecks, MethodIsAToken) {
  for (const char* m : {"", "GE T", "GE(T", "G\x01", "\xc3\xa9"})
    EXPECT_EQ(verdict({m, "https", "/", "a", "", ""}), HeadVerdict::Malformed) << m;
}

TEST(H2RequestChecks, AuthorityAndHost) {
  for (const char* a : {"user@example.com", "@example.com", "a b", "\xc3\xa9", "a:8x", "a:1:2", "[::1", "a:123456",
                        ":80", "a%zz", "a/b", "a?b"}) {
    EXPECT_EQ(verdict(get("/", a)), HeadVerdict::Malformed) << a;
    EXPECT_EQ(verdict({"GET", "https", "/", "", a, ""}), HeadVerdict::Malformed) << "host " << a;
  }
  EXPECT_EQ(check_request_head(get("/", "u@a")).reason, std::string(":authority with userinfo"));
  EXPECT_EQ(verdict({"GET", "https", "/", "a.example", "b.example", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"GET", "https", "/", "", "", ""}), HeadVerdict::Malformed);
}

TEST(H2RequestChecks, ConnectIsAnswered501WhenWellFormed) {
  EXPECT_EQ(check_request_head({"CONNECT", "", "", "example.com:443", "", ""}).status, 501);
  EXPECT_EQ(verdict({"CONNECT", "", "", "example.com:443", "", ""}), HeadVerdict::Answer);
  EXPECT_EQ(verdict({"CONNECT", "", "", "[::1]:443", "", ""}), HeadVerdict::Answer);
  EXPECT_EQ(verdict({"CONNECT", "", "", "example.com", "", ""}), HeadVerdict::Malformed);  // no port
  EXPECT_EQ(verdict({"CONNECT", "", "", "[::1]", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"CONNECT", "", "", "", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"CONNECT", "https", "", "a:1", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"CONNECT", "", "/x", "a:1", "", ""}), HeadVerdict::Malformed);
  EXPECT_EQ(verdict({"GET", "https", "/", "a", "", "websocket"}), HeadVerdict::Malformed);  // :protocol without CONNECT
  EXPECT_EQ(verdict({"CONNECT", "https", "*", "a", "", "websocket"}), HeadVerdict::Malformed);
}

TEST(H2RequestChecks, AnsweredByTheProxyAsForHttp11) {
  std::string m32(http1::kMaxMethodSize, 'M'), m33(http1::kMaxMethodSize + 1, 'M');
  EXPECT_EQ(verdict({m32, "https", "/", "a", "", ""}), HeadVerdict::Ok);
  EXPECT_EQ(check_request_head({m33, "https", "/", "a", "", ""}).status, 501);
  EXPECT_EQ(check_request_head({"OPTIONS", "https", "*", "a", "", ""}).status, 200);
  RequestFields f{"OPTIONS", "https", "/x", "a", "", ""};
  f.max_forwards = "0";
  f.max_forwards_count = 1;
  EXPECT_EQ(check_request_head(f).status, 200);
  f.method = "TRACE";
  EXPECT_EQ(check_request_head(f).status, 501);
  f.max_forwards = "3";
  EXPECT_EQ(verdict(f), HeadVerdict::Ok);
  f.max_forwards = "x";
  EXPECT_EQ(check_request_head(f).status, 400);
  f.max_forwards = "3";
  f.max_forwards_count = 2;
  EXPECT_EQ(check_request_head(f).status, 400);
  f.method = "GET";  // Max-Forwards means nothing to other methods
  EXPECT_EQ(verdict(f), HeadVerdict::Ok);
}

// Property: any head the checks accept becomes a request line and Host field the strict
// HTTP/1.1 parser accepts, with the same method, target and host. Random heads over all
// byte values (biased towards characters that are nearly valid).
TEST(H2RequestChecks, AcceptedHeadsParseAsHttp11) {
  std::mt19937 rng(20261205);
  const std::string near = "/?%#:@[]!$&'()*+,;=-._~ \"<>\\^`{|}aZ09\x7f\x80\xff\t\x01";
  auto piece = [&](size_t max) {
    std::string s;
    size_t n = rng() % (max + 1);
    for (size_t i = 0; i < n; ++i) {
      unsigned r = rng() % 10;
      if (r < 5) s.push_back(static_cast<char>('a' + rng() % 26));
      else if (r < 9) s.push_back(near[rng() % near.size()]);
      else s.push_back(static_cast<char>(rng() % 256));
    }
    return s;
  };
  int accepted = 0;
  http1::RequestParser parser;
  http1::RequestHead head;
  for (int i = 0; i < 60000; ++i) {
    std::string method = rng() % 4 ? std::string("GET") : piece(6);
    std::string path = (rng() % 3 ? "/" : "") + piece(12);
    std::string authority = piece(10);
    if (rng() % 4 == 0) authority += ":" + std::to_string(rng() % 100000);
    RequestFields f{method, "https", path, authority, "", ""};
    if (check_request_head(f).verdict != HeadVerdict::Ok) continue;
    ++accepted;
    std::string wire = method + " " + path + " HTTP/1.1\r\nhost: " + authority + "\r\n\r\n";
    parser.reset();
    http1::HeadResult r = parser.parse(wire, head);
    ASSERT_EQ(r.status, http1::ParseStatus::Done) << "method [" << method << "] path [" << path << "] authority ["
                                                  << authority << "]: " << r.error.reason;
    EXPECT_EQ(head.method, method);
    EXPECT_EQ(head.target, path);
    EXPECT_EQ(head.host, authority);
  }
  EXPECT_GT(accepted, 300) << "the generator should make many valid heads";
}

TEST(H2StreamIds, NewIdsMustGrow) {
  StreamIds ids;
  EXPECT_TRUE(ids.on_headers(1, false));
  EXPECT_TRUE(ids.on_headers(5, false));
  EXPECT_EQ(ids.max_id(), 5);
  EXPECT_FALSE(ids.on_headers(3, false)) << "lower than one already used (skipped)";
  EXPECT_FALSE(ids.on_headers(1, false)) << "closed";
  EXPECT_FALSE(ids.on_headers(5, false)) << "the last one, closed";
  EXPECT_TRUE(ids.on_headers(5, true)) << "open: trailers";
  EXPECT_TRUE(ids.on_headers(7, false));
}

TEST(H2StreamIds, LateHeadersOfAResetStreamAreIgnored) {
  StreamIds ids;
  for (int32_t id = 1; id <= 41; id += 2) ASSERT_TRUE(ids.on_headers(id, false));
  ids.on_reset_sent(3);
  EXPECT_TRUE(ids.on_headers(3, false));
  for (int32_t id = 5; id < 5 + 2 * 16; id += 2) ids.on_reset_sent(id);
  EXPECT_FALSE(ids.on_headers(3, false)) << "forgotten after 16 later resets";
  EXPECT_TRUE(ids.on_headers(35, false));
}

}  // namespace
}  // namespace corral::proxy::h2
