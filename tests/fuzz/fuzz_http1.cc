// libFuzzer target for the HTTP/1.1 codec. For each input:
//  1. parse it as a request (head + body), whole and in two deliveries: both must agree;
//  2. when it parses, serialize it back with corral's own framing, parse that again and
//     require the same method, target, header fields (framing fields aside) and body;
//  3. parse it as a response too (to GET or HEAD), whole and in two deliveries, head and
//     body; when it parses, serialize it back (as corral's serializer frames it), parse that
//     again and require the same status, reason, header fields (framing aside), body kind,
//     announced length and body.
// Any disagreement aborts, so the fuzzer reports it as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "common/http1/serializer.h"

using namespace corral;
using namespace corral::http1;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_http1: %s\n", what);
  std::abort();
}

void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

/// Decodes a whole body from `in`; false on error or when it does not complete.
bool decode_body(BodyKind kind, uint64_t len, std::string_view in, std::string& out, bool eof_ends) {
  BodyDecoder d;
  d.start(kind, len);
  size_t pos = 0;
  while (!d.done()) {
    BodyDecoder::Step st = d.step(in.substr(pos));
    if (st.error) return false;
    require(st.consumed <= in.size() - pos, "body step consumed past its input");
    require(st.data.size() <= st.consumed, "body data larger than consumed");
    out.append(st.data);
    pos += st.consumed;
    if (st.consumed == 0) break;
  }
  if (!d.done() && eof_ends) return d.on_eof();
  return d.done();
}

bool is_framing(const Header& h) {
  return iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding");
}

/// The framing corral's serializer gives a parsed message of body kind `kind` and `body`.
BodyFraming framing_of(BodyKind kind, const std::string& body) {
  if (kind == BodyKind::ContentLength) return BodyFraming::content_length(body.size());
  if (kind == BodyKind::Chunked) return BodyFraming::chunked();
  return BodyFraming::none();
}

/// Appends `body` as framed by `kind`: one chunk and the last chunk, as it is, or nothing for a
/// message without a body.
void append_body(std::string& wire, BodyKind kind, const std::string& body) {
  if (kind == BodyKind::Chunked) {
    if (!body.empty()) {
      append_chunk_header(wire, body.size());
      wire += body;
      append_chunk_end(wire);
    }
    append_last_chunk(wire);
  } else if (kind != BodyKind::None) {
    wire += body;
  }
}

/// The header fields of `sent` and `got` are the same, in order, framing fields aside.
void require_same_fields(const std::vector<Header>& sent, const std::vector<Header>& got, const char* count_what,
                         const char* field_what) {
  std::vector<Header> a, b;
  for (const Header& x : sent)
    if (!is_framing(x)) a.push_back(x);
  for (const Header& x : got)
    if (!is_framing(x)) b.push_back(x);
  require(a.size() == b.size(), count_what);
  for (size_t i = 0; i < a.size(); ++i) require(a[i].name == b[i].name && a[i].value == b[i].value, field_what);
}

void round_trip(const RequestHead& h, const std::string& body) {
  if (h.version_minor == 0) {
    // Re-serialized as HTTP/1.1, which requires the Host that HTTP/1.0 may omit.
    bool has_host = false;
    for (const Header& x : h.headers) has_host |= iequals(x.name, "host");
    if (!has_host) return;
  }
  const BodyFraming framing = framing_of(h.body, body);

  // An HTTP/1.0 request's expectations are ignored (RFC 9110 §10.1.1); as HTTP/1.1 they
  // would count, so they are left out (the proxy never forwards Expect anyway).
  static std::vector<Header> fields;
  fields.clear();
  for (const Header& x : h.headers)
    if (h.version_minor == 1 || !iequals(x.name, "expect")) fields.push_back(x);

  static std::string wire;
  wire.clear();
  append_request_head(wire, h.method, h.target, fields, framing);
  const size_t head_size = wire.size();
  append_body(wire, h.body, body);

  RequestParser p;
  RequestHead again;
  HeadResult r = p.parse(wire, again);
  if (r.status != ParseStatus::Done) {
    std::fprintf(stderr, "reparse error %d %s\n", r.error.status, r.error.reason);
    fail("serialized request does not parse");
  }
  require(r.consumed == head_size, "reparsed head size differs");
  require(again.method == h.method, "method differs");
  require(again.target == h.target, "target differs");
  require(again.host == h.host, "host differs");
  require(again.body == h.body, "body kind differs");
  require(again.expect_continue == h.expect_continue, "expect differs");
  require_same_fields(fields, again.headers, "header count differs", "header differs");
  std::string body2;
  require(decode_body(again.body, again.content_length, std::string_view(wire).substr(r.consumed), body2, false),
          "re-framed body does not decode");
  require(body2 == body, "body differs");
}

void fuzz_request(std::string_view in) {
  RequestParser p;
  RequestHead h;
  HeadResult r = p.parse(in, h);

  // Same input in two deliveries: the resumed scan must reach the same verdict.
  {
    RequestParser q;
    RequestHead h2;
    HeadResult r2 = q.parse(in.substr(0, in.size() / 2), h2);
    if (r2.status == ParseStatus::Incomplete) r2 = q.parse(in, h2);
    require(r2.status == r.status, "split delivery changes the status");
    if (r.status == ParseStatus::Done) require(r2.consumed == r.consumed, "split delivery changes consumed");
    if (r.status == ParseStatus::Error) require(r2.error.status == r.error.status, "split delivery changes error");
  }
  if (r.status != ParseStatus::Done) return;
  require(r.consumed <= in.size(), "consumed past the input");
  std::string body;
  if (!decode_body(h.body, h.content_length, in.substr(r.consumed), body, false)) return;
  round_trip(h, body);
}

void response_round_trip(const ResponseHead& h, std::string_view method, const std::string& body) {
  BodyFraming framing = framing_of(h.body, body);
  // A HEAD or 304 response passes on the length it announced for the body it does not carry.
  if (h.body == BodyKind::None && h.has_content_length) framing = BodyFraming::content_length(h.content_length);

  static std::string wire;
  wire.clear();
  append_response_head(wire, h.status, h.headers, framing, h.reason);
  const size_t head_size = wire.size();
  append_body(wire, h.body, body);

  ResponseParser p;
  ResponseHead again;
  HeadResult r = p.parse(wire, method, again);
  if (r.status != ParseStatus::Done) {
    std::fprintf(stderr, "reparse error %d %s\n", r.error.status, r.error.reason);
    fail("serialized response does not parse");
  }
  require(r.consumed == head_size, "reparsed response head size differs");
  require(again.status == h.status, "status differs");
  if (!h.reason.empty()) require(again.reason == h.reason, "reason differs");
  require(again.body == h.body, "response body kind differs");
  require(again.has_content_length == (framing.kind == BodyFraming::Kind::ContentLength),
          "Content-Length presence differs");
  if (h.body == BodyKind::ContentLength || h.has_content_length)
    require(again.content_length == h.content_length, "announced length differs");
  // HTTP/1.0 is re-serialized as HTTP/1.1, whose default persistence differs.
  if (h.version_minor == 1) require(again.keep_alive == h.keep_alive, "keep-alive differs");
  require_same_fields(h.headers, again.headers, "response header count differs", "response header differs");
  std::string body2;
  require(decode_body(again.body, again.content_length, std::string_view(wire).substr(r.consumed), body2, true),
          "re-framed response body does not decode");
  require(body2 == body, "response body differs");
}

void fuzz_response(std::string_view in, std::string_view method) {
  ResponseParser p;
  ResponseHead h;
  HeadResult r = p.parse(in, method, h);
  {
    ResponseParser q;
    ResponseHead h2;
    HeadResult r2 = q.parse(in.substr(0, in.size() / 2), method, h2);
    if (r2.status == ParseStatus::Incomplete) r2 = q.parse(in, method, h2);
    require(r2.status == r.status, "split delivery changes the response status");
    if (r.status == ParseStatus::Done) require(r2.consumed == r.consumed, "split delivery changes consumed");
  }
  if (r.status != ParseStatus::Done) return;
  require(r.consumed <= in.size(), "response consumed past the input");
  require(h.status >= 100 && h.status <= 999, "status out of range");
  std::string body;
  if (!decode_body(h.body, h.content_length, in.substr(r.consumed), body, true)) return;
  response_round_trip(h, method, body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  fuzz_request(in);
  fuzz_response(in, (size & 1) != 0 ? "HEAD" : "GET");
  return 0;
}
