#include "proxy/forwarding_headers.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace corral::proxy {
namespace {

http1::RequestHead request(std::vector<http1::Header> headers) {
  http1::RequestHead h;
  h.method = "POST";
  h.target = "/submit?x=1";
  h.version_minor = 1;
  h.headers = std::move(headers);
  for (auto& x : h.headers)
    if (x.name == "Host") h.host = x.value;
  return h;
}

// A response head with its Date line (added when the worker sent none) removed; fails the
// test when there is none.
std::string without_date(std::string out) {
  size_t at = out.find("\r\nDate: ");
  EXPECT_NE(at, std::string::npos) << "no Date in " << out;
  if (at == std::string::npos) return out;
  size_t end = out.find("\r\n", at + 2);
  out.erase(at, end - at);
  return out;
}

TEST(ForwardingHeadersTest, HopByHopNames) {
  for (auto n : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "UPGRADE"})
    EXPECT_TRUE(is_hop_by_hop(n)) << n;
  for (auto n : {"Content-Type", "Host", "Cookie", "Te-x", "Upgraded"}) EXPECT_FALSE(is_hop_by_hop(n)) << n;
}

TEST(ForwardingHeadersTest, RequestHeadDropsHopByHopAndFramingAndReplacesForwarding) {
  auto req = request({{"Host", "shop.example"},
                      {"Connection", "keep-alive, X-Secret"},
                      {"X-Secret", "s"},
                      {"Keep-Alive", "timeout=5"},
                      {"Transfer-Encoding", "chunked"},
                      {"Content-Length", "99"},
                      {"TE", "trailers"},
                      {"Upgrade", "websocket"},
                      {"Proxy-Connection", "x"},
                      {"Expect", "100-continue"},
                      {"X-Forwarded-For", "6.6.6.6"},
                      {"X-Forwarded-Proto", "https"},
                      {"X-Forwarded-Host", "evil"},
                      {"X-Request-Id", "forged"},
                      {"Content-Type", "text/plain"},
                      {"Cookie", "a=b"}});
  Forwarding fwd;
  fwd.client_ip = "10.1.2.3";
  fwd.host = "shop.example";
  fwd.request_id = "abc-1";
  std::string out;
  append_request_head(req, fwd, out);
  finish_request_head(out, 11, true);
  EXPECT_EQ(out,
            "POST /submit?x=1 HTTP/1.1\r\n"
            "Host: shop.example\r\n"
            "Content-Type: text/plain\r\n"
            "Cookie: a=b\r\n"
            "Via: 1.1 corral\r\n"
            "X-Forwarded-For: 10.1.2.3\r\n"
            "X-Forwarded-Proto: http\r\n"
            "X-Forwarded-Host: shop.example\r\n"
            "X-Request-Id: abc-1\r\n"
            "Content-Length: 11\r\n"
            "\r\n");
}

TEST(ForwardingHeadersTest, TrustedProxyChainIsExtendedAndItsProtoKept) {
  auto req = request({{"Host", "shop.example"},
                      {"X-Forwarded-For", "203.0.113.9, 10.0.0.7"},
                      {"X-Forwarded-Proto", "HTTPS"},
                      {"X-Real-IP", "6.6.6.6"}});
  Forwarding fwd;
  fwd.client_ip = "10.0.0.1";
  fwd.host = "shop.example";
  fwd.trusted_peer = true;
  fwd.forwarded_for = "203.0.113.9, 10.0.0.7";
  fwd.real_ip = "203.0.113.9";
  std::string out;
  append_request_head(req, fwd, out);
  EXPECT_NE(out.find("X-Forwarded-For: 203.0.113.9, 10.0.0.7, 10.0.0.1\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Real-IP: 203.0.113.9\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("6.6.6.6"), std::string::npos) << "the client's own X-Real-IP is dropped: " << out;
  EXPECT_NE(out.find("X-Forwarded-Proto: https\r\n"), std::string::npos) << out;

  // Not trusted: replaced, the proto is the connection's, no X-Real-IP at all.
  Forwarding plain;
  plain.client_ip = "10.0.0.1";
  out.clear();
  append_request_head(req, plain, out);
  EXPECT_NE(out.find("X-Forwarded-For: 10.0.0.1\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("203.0.113.9"), std::string::npos) << out;
  EXPECT_EQ(out.find("X-Real-IP"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Proto: http\r\n"), std::string::npos) << out;

  // Trusted, but an X-Forwarded-Proto that is neither http nor https: ours.
  auto odd = request({{"Host", "a"}, {"X-Forwarded-Proto", "gopher"}});
  Forwarding t;
  t.client_ip = "10.0.0.1";
  t.trusted_peer = true;
  t.proto = "https";
  out.clear();
  append_request_head(odd, t, out);
  EXPECT_NE(out.find("X-Forwarded-For: 10.0.0.1\r\n"), std::string::npos) << out;  // no chain: the peer alone
  EXPECT_NE(out.find("X-Forwarded-Proto: https\r\n"), std::string::npos) << out;
}

TEST(ForwardingHeadersTest, ForwardedClientIsTheRightmostUntrustedAddress) {
  net::CidrSet trusted({"10.0.0.0/8", "2001:db8::/32"});
  EXPECT_EQ(forwarded_client("203.0.113.9", "10.0.0.1", trusted), "203.0.113.9");
  EXPECT_EQ(forwarded_client("198.51.100.1, 203.0.113.9, 10.0.0.7", "10.0.0.1", trusted), "203.0.113.9");
  // A client cannot hide behind a forged entry on the left: the rightmost untrusted one wins.
  EXPECT_EQ(forwarded_client("10.9.9.9, 203.0.113.9", "10.0.0.1", trusted), "203.0.113.9");
  // All trusted: the leftmost.
  EXPECT_EQ(forwarded_client("10.0.0.9, 10.0.0.8", "10.0.0.1", trusted), "10.0.0.9");
  // Not an address: the walk stops at the trusted one to its right.
  EXPECT_EQ(forwarded_client("203.0.113.9, unknown, 10.0.0.7", "10.0.0.1", trusted), "10.0.0.7");
  EXPECT_EQ(forwarded_client("garbage", "10.0.0.1", trusted), "10.0.0.1");
  EXPECT_EQ(forwarded_client("203.0.113.9:4711", "10.0.0.1", trusted), "10.0.0.1");
  // Empty elements are skipped; spaces trimmed; IPv6.
  EXPECT_EQ(forwarded_client(" 2001:db9::1 , , 2001:db8::7", "10.0.0.1", trusted), "2001:db9::1");
  EXPECT_EQ(forwarded_client("", "10.0.0.1", trusted), "10.0.0.1");

  std::string chain;
  append_forwarded_for(chain, " 203.0.113.9 ");
  append_forwarded_for(chain, "");
  append_forwarded_for(chain, "10.0.0.7, 10.0.0.8");
  EXPECT_EQ(chain, "203.0.113.9, 10.0.0.7, 10.0.0.8");
}

TEST(ForwardingHeadersTest, BodylessRequestHasNoContentLengthAndHttp10GetsHost) {
  http1::RequestHead req;
  req.method = "GET";
  req.target = "/";
  req.version_minor = 0;
  Forwarding fwd;
  std::string out;
  append_request_head(req, fwd, out);
  finish_request_head(out, 0, false);
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: localhost\r\nVia: 1.0 corral\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST(ForwardingHeadersTest, ResponseHeadReframes) {
  http1::ResponseHead resp;
  resp.status = 200;
  resp.reason = "OK";
  resp.headers = {{"Content-Type", "text/html"},
                  {"Transfer-Encoding", "chunked"},
                  {"Connection", "close, X-Internal"},
                  {"X-Internal", "1"},
                  {"Set-Cookie", "s=1"}};
  resp.body = http1::BodyKind::Chunked;
  EXPECT_EQ(choose_framing(resp, 1, false), ClientFraming::Chunked);
  EXPECT_EQ(choose_framing(resp, 0, false), ClientFraming::UntilClose);
  std::string out;
  append_response_head(resp, ClientFraming::Chunked, 1, true, out);
  EXPECT_EQ(without_date(out),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: s=1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  out.clear();
  append_response_head(resp, ClientFraming::UntilClose, 0, true, out);
  EXPECT_EQ(without_date(out), "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nSet-Cookie: s=1\r\nConnection: close\r\n\r\n");
}

TEST(ForwardingHeadersTest, ContentLengthPassesThroughAndHttp10KeepAlive) {
  http1::ResponseHead resp;
  resp.status = 404;
  resp.headers = {{"Content-Length", "5"}};
  resp.body = http1::BodyKind::ContentLength;
  resp.content_length = 5;
  ASSERT_EQ(choose_framing(resp, 0, false), ClientFraming::ContentLength);
  std::string out;
  append_response_head(resp, ClientFraming::ContentLength, 0, true, out);
  EXPECT_EQ(without_date(out), "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(choose_framing(resp, 1, true), ClientFraming::ContentLength);  // HEAD keeps the length
  resp.status = 304;
  resp.body = http1::BodyKind::None;
  EXPECT_EQ(choose_framing(resp, 1, false), ClientFraming::None);
}

// A worker's answer to HEAD, parsed as the upstream client parses it, then re-framed for
// an HTTP/1.1 client.
std::string head_response_for_client(std::string_view raw) {
  http1::ResponseParser p;
  http1::ResponseHead resp;
  EXPECT_EQ(p.parse(raw, "HEAD", resp).status, http1::ParseStatus::Done) << raw;
  ClientFraming f = choose_framing(resp, 1, true);
  std::string out;
  append_response_head(resp, f, 1, true, out);
  return without_date(out);
}

TEST(ForwardingHeadersTest, HeadResponseKeepsTheWorkersContentLength) {
  // RFC 9110 §9.3.2: the GET's length, unchanged (not 0), and no body.
  EXPECT_EQ(head_response_for_client("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 744\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 744\r\n\r\n");
  EXPECT_EQ(head_response_for_client("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(head_response_for_client("HTTP/1.1 404 Not Found\r\nContent-Length: 21\r\n\r\n"),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 21\r\n\r\n");
}

TEST(ForwardingHeadersTest, HeadResponseWithoutALengthGetsNoneInvented) {
  // Chunked or until-close for the GET: the HEAD response has no framing field at all.
  EXPECT_EQ(head_response_for_client("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  EXPECT_EQ(head_response_for_client("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
  // A FastCGI or locally made head says ContentLength outright.
  http1::ResponseHead resp;
  resp.status = 200;
  resp.body = http1::BodyKind::ContentLength;
  resp.content_length = 16;
  EXPECT_EQ(choose_framing(resp, 1, true), ClientFraming::ContentLength);
  // A bodiless GET answer still says "Content-Length: 0" so the client does not wait.
  resp.body = http1::BodyKind::None;
  EXPECT_EQ(choose_framing(resp, 1, false), ClientFraming::Empty);
  std::string out;
  append_response_head(resp, ClientFraming::Empty, 1, true, out);
  EXPECT_EQ(without_date(out), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(ForwardingHeadersTest, WorkersDateIsKeptAndNoneAdded) {
  http1::ResponseHead resp;
  resp.status = 200;
  resp.headers = {{"Date", "Sun, 06 Nov 1994 08:49:37 GMT"}};
  std::string out;
  append_response_head(resp, ClientFraming::Empty, 1, true, out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n");
}

TEST(ForwardingHeadersTest, AbsoluteFormGoesOutInOriginFormWithItsAuthorityAsHost) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://a.example/p?q=1", "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\n"},
      {"http://a.example", "GET / HTTP/1.1\r\nHost: a.example\r\n"},
      {"https://a.example?q", "GET /?q HTTP/1.1\r\nHost: a.example\r\n"},
  };
  for (auto [target, start] : cases) {
    http1::RequestHead req;
    req.method = "GET";
    req.target = target;
    req.version_minor = 1;
    req.authority = "a.example";
    req.host = "a.example";
    req.headers = {{"Host", "b.example"}};
    std::string out;
    append_request_head(req, Forwarding{}, out);
    EXPECT_EQ(out.rfind(start, 0), 0u) << out;
  }
}

TEST(ForwardingHeadersTest, MaxForwardsOnOptionsAndTrace) {
  http1::RequestHead req;
  req.method = "OPTIONS";
  req.target = "/";
  // The proxy's own answer (0: forwarded), as both frontends ask for it.
  auto answer = [&] { return local_answer(req.method, req.target, max_forwards_fields(req)).status; };
  EXPECT_EQ(answer(), 0);
  req.headers = {{"Max-Forwards", "0"}};
  EXPECT_EQ(answer(), 200);
  req.method = "TRACE";
  EXPECT_EQ(answer(), 501);
  req.method = "OPTIONS";
  req.headers = {{"Max-Forwards", "x"}};
  EXPECT_EQ(answer(), 400);
  EXPECT_STREQ(local_answer(req.method, req.target, max_forwards_fields(req)).reason, "invalid Max-Forwards");
  req.headers = {{"Max-Forwards", "3"}, {"Max-Forwards", "3"}};
  EXPECT_EQ(answer(), 400);
  req.headers = {{"Max-Forwards", "3"}};
  EXPECT_EQ(answer(), 0);
  std::string out;
  append_request_head(req, Forwarding{}, out);
  EXPECT_NE(out.find("\r\nMax-Forwards: 2\r\n"), std::string::npos) << out;
  req.method = "GET";  // other methods: neither answered nor decremented
  req.headers = {{"Max-Forwards", "0"}};
  EXPECT_EQ(max_forwards_fields(req).count, 0);
  EXPECT_EQ(answer(), 0);
  out.clear();
  append_request_head(req, Forwarding{}, out);
  EXPECT_NE(out.find("\r\nMax-Forwards: 0\r\n"), std::string::npos) << out;
}

TEST(ForwardingHeadersTest, ConnectAndOptionsAsteriskAreAnsweredByTheProxy) {
  EXPECT_EQ(local_answer("CONNECT", "example.com:443", {}).status, 501);
  EXPECT_STREQ(local_answer("CONNECT", "example.com:443", {}).reason, "CONNECT is not supported");
  EXPECT_EQ(local_answer("OPTIONS", "*", {}).status, 200);
  EXPECT_STREQ(local_answer("OPTIONS", "*", {}).reason, "");
  EXPECT_EQ(local_answer("OPTIONS", "*", {"x", 1}).status, 400) << "an invalid Max-Forwards first";
  EXPECT_EQ(local_answer("OPTIONS", "/x", {}).status, 0);
  EXPECT_EQ(local_answer("GET", "/", {"0", 1}).status, 0);
}

TEST(ForwardingHeadersTest, EveryConnectionOptionIsRemovedHoweverMany) {
  std::vector<std::string> names;
  std::string list;
  for (int i = 0; i < 40; ++i) {
    names.push_back("X-O" + std::to_string(i));
    list += (i ? "," : "") + names.back();
  }
  http1::RequestHead req;
  req.method = "GET";
  req.target = "/";
  req.version_minor = 1;
  req.headers.push_back({"Connection", list});
  for (auto& n : names) req.headers.push_back({n, "v"});
  req.headers.push_back({"X-Kept", "k"});
  std::string out;
  append_request_head(req, Forwarding{}, out);
  for (auto& n : names) EXPECT_EQ(out.find(n + ":"), std::string::npos) << n;
  EXPECT_NE(out.find("X-Kept: k"), std::string::npos);
}

TEST(ForwardingHeadersTest, RequestIdsAreUniqueAndPrefixed) {
  RequestIdGenerator gen(0xdeadbeef);
  std::array<char, RequestIdGenerator::kSize> a{}, b{};
  std::string first(gen.next(a));
  std::string second(gen.next(b));
  EXPECT_EQ(first, "deadbeef-000000000001");
  EXPECT_EQ(second, "deadbeef-000000000002");
  RequestIdGenerator random_gen;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(std::string(random_gen.next(a)));
  EXPECT_EQ(seen.size(), 1000u);
}

// The spec's example.
constexpr const char* kValid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(TraceparentTest, Version00MustHaveExactlyTheShape) {
  EXPECT_TRUE(valid_traceparent(kValid));
  EXPECT_TRUE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  EXPECT_TRUE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff"));  // unknown flags pass
  EXPECT_EQ(trace_id_of(kValid), "4bf92f3577b34da6a3ce929d0e0e4736");
  for (const char* bad : {
           "",
           "00",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",            // short flags
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",          // 00 has no more fields
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",           // upper case
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",           // zero trace-id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",           // zero parent-id
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",           // not hex
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           // wrong separator
           "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
           "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",           // fields shifted
           "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",           // version ff
           "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "FE-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
       }) {
    EXPECT_FALSE(valid_traceparent(bad)) << bad;
    EXPECT_EQ(trace_id_of(bad), "") << bad;
  }
}

TEST(TraceparentTest, HigherVersionsPassOnTheirFirst55CharactersShape) {
  EXPECT_TRUE(valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds"));
  EXPECT_TRUE(valid_traceparent("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-"));
  EXPECT_EQ(trace_id_of("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-x"), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_FALSE(valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09x"));  // no '-' after flags
  EXPECT_FALSE(valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"));    // shorter than 55
  EXPECT_FALSE(valid_traceparent("cc-00000000000000000000000000000000-00f067aa0ba902b7-01-x"));
  EXPECT_FALSE(valid_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01-x"));
}

TEST(TraceparentTest, GeneratedOnesAreValidVersion00SampledAndDistinct) {
  TraceParentGenerator gen(42);
  std::array<char, kTraceparentSize> buf{};
  std::set<std::string> traces, parents;
  for (int i = 0; i < 2000; ++i) {
    std::string tp(gen.next(buf));
    ASSERT_TRUE(valid_traceparent(tp)) << tp;
    EXPECT_EQ(tp.substr(0, 3), "00-");
    EXPECT_EQ(tp.substr(52), "-01");
    traces.insert(tp.substr(3, 32));
    parents.insert(tp.substr(36, 16));
  }
  EXPECT_EQ(traces.size(), 2000u);
  EXPECT_EQ(parents.size(), 2000u);
  // Same seed, same sequence; another seed, another one.
  TraceParentGenerator again(42), other(43);
  std::array<char, kTraceparentSize> a{}, b{}, c{};
  EXPECT_EQ(again.next(a), TraceParentGenerator(42).next(b));
  EXPECT_NE(TraceParentGenerator(42).next(a), other.next(c));
  // The per-thread generators are seeded apart.
  std::string here(TraceParentGenerator::for_this_thread().next(a)), there;
  std::thread([&] { there = std::string(TraceParentGenerator::for_this_thread().next(b)); }).join();
  EXPECT_TRUE(valid_traceparent(here));
  EXPECT_NE(here.substr(3, 32), there.substr(3, 32));
}

TEST(TraceparentTest, RequestHeadCarriesTheChosenTraceparentAndTracestateOnlyWithTheClientsOwn) {
  auto req = request({{"Host", "a"},
                      {"traceparent", "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01"},
                      {"TraceState", "vendor=x"},
                      {"X-Other", "1"}});
  Forwarding fwd;
  fwd.host = "a";
  fwd.traceparent = kValid;
  fwd.keep_tracestate = false;
  std::string out;
  append_request_head(req, fwd, out);
  EXPECT_EQ(out.find("ffffffff"), std::string::npos) << "the client's traceparent was copied: " << out;
  EXPECT_EQ(out.find("vendor=x"), std::string::npos) << "tracestate without the client's traceparent: " << out;
  EXPECT_NE(out.find("X-Other: 1\r\n"), std::string::npos);
  EXPECT_NE(out.find(std::string("traceparent: ") + kValid + "\r\n"), std::string::npos) << out;
  // The client's own traceparent: its tracestate goes along, unchanged.
  out.clear();
  fwd.keep_tracestate = true;
  append_request_head(req, fwd, out);
  EXPECT_NE(out.find("TraceState: vendor=x\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("traceparent:"), out.rfind("traceparent:")) << "one traceparent only: " << out;
  // Nothing chosen: none sent.
  out.clear();
  fwd.traceparent = {};
  append_request_head(req, fwd, out);
  EXPECT_EQ(out.find("traceparent"), std::string::npos) << out;
}

}  // namespace
}  // namespace corral::proxy
