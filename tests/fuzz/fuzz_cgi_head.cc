// libFuzzer target for a CGI program's output as corral-worker reads it (RFC 3875 §6). For
// each input:
//  1. parse the header block with cgi::ResponseHeadParser, whole and fed in pieces the way a
//     pipe delivers it (resuming after Incomplete): both must reach the same verdict, size
//     and head;
//  2. when it parses, the head keeps its promises (a status the parser allows, no framing
//     or hop-by-hop field among the fields, a redirect only with a Location);
//  3. corral-worker's ResponseEncoder frames it for the proxy (for GET and HEAD, the rest
//     of the input as the body) and the proxy's strict http1::ResponseParser must accept
//     it with the same status, fields and body.
// Any disagreement aborts, so the fuzzer reports it as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/base/strings.h"
#include "common/cgi/response_head.h"
#include "common/http1/parser.h"
#include "workers/response_encoder.h"

using namespace corral;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_cgi_head: %s\n", what);
  std::abort();
}

void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

bool same(const cgi::ResponseHead& a, const cgi::ResponseHead& b) {
  return a.kind == b.kind && a.status == b.status && a.reason == b.reason && a.location == b.location &&
         a.content_length == b.content_length && a.headers == b.headers;
}

bool hop_or_framing(std::string_view n) {
  for (std::string_view x : {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                             "upgrade", "content-length", "status"})
    if (iequals(n, x)) return true;
  return false;
}

/// What the proxy reads from corral-worker for this head and body.
void check_encoded(const cgi::ResponseHead& h, std::string_view body, bool head_request) {
  worker::ResponseEncoder enc(head_request, true);
  std::string wire;
  enc.head(wire, h.status, h.reason, h.headers, h.content_length);
  const size_t head_size = wire.size();
  enc.body(wire, body);
  bool complete = enc.finish(wire);

  // The limits the proxy reads worker responses with (proxy/upstream/http1_client.cc).
  http1::Limits limits;
  limits.max_head_size = 64 * 1024;
  limits.max_header_count = 256;
  http1::ResponseParser p(limits);
  http1::ResponseHead r;
  http1::HeadResult res = p.parse(wire, head_request ? "HEAD" : "GET", r);
  if (res.status != http1::ParseStatus::Done) {
    std::fprintf(stderr, "error %s\n", res.error.reason);
    fail("the worker's response head does not parse");
  }
  require(res.consumed == head_size, "the worker's head size differs");
  require(r.status == h.status, "status differs");
  if (!h.reason.empty()) require(r.reason == h.reason, "reason differs");
  size_t i = 0;
  for (const auto& [n, v] : h.headers) {
    if (iequals(n, "connection") || iequals(n, "keep-alive")) continue;
    while (i < r.headers.size() && (iequals(r.headers[i].name, "content-length") ||
                                    iequals(r.headers[i].name, "transfer-encoding")))
      ++i;
    require(i < r.headers.size(), "a field is missing");
    require(r.headers[i].name == n, "a field name differs");
    require(r.headers[i].value == trim_ows(v), "a field value differs");
    ++i;
  }
  // Body: what the encoder sent must decode to the part of the input it promised.
  http1::BodyDecoder d;
  d.start(r.body, r.content_length);
  std::string got;
  std::string_view rest = std::string_view(wire).substr(res.consumed);
  while (!d.done()) {
    http1::BodyDecoder::Step st = d.step(rest);
    require(!st.error, "the worker's body does not decode");
    got.append(st.data);
    rest.remove_prefix(st.consumed);
    if (st.consumed == 0) break;
  }
  if (!d.done()) {
    require(!complete, "a complete body does not decode to its end");
    return;
  }
  require(rest.empty(), "bytes after the worker's body");
  const bool bodiless = head_request || h.status == 204 || h.status == 304;
  std::string_view want = bodiless ? std::string_view() : body;
  if (!bodiless && h.content_length && *h.content_length < body.size()) want = body.substr(0, *h.content_length);
  require(got == want, "body differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  cgi::ResponseHeadParser whole;
  cgi::ResponseHead h;
  cgi::ResponseHeadParser::Status st = whole.parse(in, h);

  // The same bytes arriving in pieces (sizes from the input itself).
  {
    cgi::ResponseHeadParser p;
    cgi::ResponseHead h2;
    cgi::ResponseHeadParser::Status st2 = cgi::ResponseHeadParser::Status::Incomplete;
    size_t have = 0, k = 0;
    while (st2 == cgi::ResponseHeadParser::Status::Incomplete && have < in.size()) {
      size_t step = 1 + (size > 0 ? data[k++ % size] % 61 : 0);
      have = std::min(in.size(), have + step);
      st2 = p.parse(in.substr(0, have), h2);
    }
    require(st2 == st, "pieces change the verdict");
    if (st == cgi::ResponseHeadParser::Status::Done) {
      require(p.consumed() == whole.consumed(), "pieces change the head size");
      require(same(h, h2), "pieces change the head");
    }
    if (st == cgi::ResponseHeadParser::Status::Error) require(std::string_view(p.error()) == whole.error(), "pieces change the error");
  }
  if (st != cgi::ResponseHeadParser::Status::Done) return 0;

  require(whole.consumed() <= in.size(), "consumed past the input");
  require(h.status >= 200 && h.status <= 599, "status out of range");
  for (const auto& [n, v] : h.headers) require(!hop_or_framing(n), "a framing or hop-by-hop field is kept");
  if (h.kind != cgi::ResponseKind::Document) require(!h.location.empty(), "a redirect without a Location");
  if (h.kind == cgi::ResponseKind::LocalRedirect) require(h.location[0] == '/', "a local redirect to a URL");

  std::string_view body = in.substr(whole.consumed());
  check_encoded(h, body, false);
  check_encoded(h, body, true);
  return 0;
}
