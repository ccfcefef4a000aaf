// libFuzzer target for what a FastCGI application sends the proxy. For each input:
//  1. fastcgi::Decoder reads it as the records answering request 1, whole and in pieces of
//     sizes taken from the input (as reads deliver them): both must give the same STDOUT and
//     STDERR bytes and the same end (END_REQUEST statuses, or the same error);
//  2. the STDOUT bytes go through the CGI header parser as FastcgiClient feeds them, and a
//     parsed head becomes the HTTP/1.1 head the proxy sends its client
//     (proxy/forwarding_headers: append_response_head), which the strict http1 parser must
//     accept with the same status and fields;
//  3. the input is also read as PARAMS content: decoded pairs, encoded again, decode to the
//     same pairs.
// Any disagreement aborts, so the fuzzer reports it as a crash.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/strings.h"
#include "common/cgi/response_head.h"
#include "common/http1/parser.h"
#include "proxy/forwarding_headers.h"
#include "proxy/upstream/fastcgi_codec.h"

using namespace corral;
using namespace corral::proxy;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_fastcgi: %s\n", what);
  std::abort();
}

void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

struct Outcome {
  std::string out, err;
  bool ended = false, failed = false;
  uint32_t app_status = 0;
  fastcgi::ProtocolStatus protocol_status = fastcgi::ProtocolStatus::RequestComplete;
  std::string why;
  size_t used = 0;  // input bytes consumed when it ended or failed
  bool operator==(const Outcome&) const = default;
};

/// Feeds `in` to a decoder `piece` bytes at a time (0: all at once), keeping unconsumed bytes
/// as FastcgiClient does.
Outcome decode(std::string_view in, const uint8_t* sizes, size_t nsizes) {
  fastcgi::Decoder d;
  d.start(1);
  Outcome o;
  std::string buf;
  size_t fed = 0, k = 0, dropped = 0;
  for (;;) {
    if (fed < in.size()) {
      size_t n = nsizes ? 1 + sizes[k++ % nsizes] % 97 : in.size();
      n = std::min(n, in.size() - fed);
      buf.append(in.substr(fed, n));
      fed += n;
    }
    bool need_more = false;
    while (!need_more) {
      fastcgi::Decoder::Event e = d.step(buf);
      require(e.consumed <= buf.size(), "consumed past the input");
      switch (e.kind) {
        case fastcgi::Decoder::Kind::NeedMore: need_more = true; break;
        case fastcgi::Decoder::Kind::Stdout: o.out.append(e.data); break;
        case fastcgi::Decoder::Kind::Stderr: o.err.append(e.data); break;
        case fastcgi::Decoder::Kind::End:
          o.ended = true;
          o.app_status = e.app_status;
          o.protocol_status = e.protocol_status;
          break;
        case fastcgi::Decoder::Kind::Error:
          o.failed = true;
          o.why = e.why;
          break;
      }
      if (e.kind == fastcgi::Decoder::Kind::Stdout || e.kind == fastcgi::Decoder::Kind::Stderr)
        require(!e.data.empty() && e.data.size() <= e.consumed, "stream data larger than consumed");
      dropped += e.consumed;
      buf.erase(0, e.consumed);
      if (o.ended || o.failed) {
        o.used = dropped;
        // After END_REQUEST, one more byte is an error; after an error, errors repeat.
        if (o.ended && !buf.empty()) require(d.step(buf).kind == fastcgi::Decoder::Kind::Error, "bytes after END_REQUEST");
        return o;
      }
    }
    if (fed == in.size()) {
      o.used = dropped;
      return o;
    }
  }
}

/// FastcgiClient::deliver_head's translation, then the head the proxy writes to an HTTP/1.1
/// client, parsed back.
void check_client_head(const cgi::ResponseHead& cgi_head, bool head_request) {
  http1::ResponseHead resp;
  resp.status = cgi_head.kind == cgi::ResponseKind::LocalRedirect ? 302 : cgi_head.status;
  resp.reason = cgi_head.reason;
  for (const auto& [n, v] : cgi_head.headers) resp.headers.push_back({n, v});
  resp.has_content_length = cgi_head.content_length.has_value();
  resp.content_length = cgi_head.content_length.value_or(0);
  if (resp.status == 204 || resp.status == 304) resp.body = http1::BodyKind::None;
  else if (resp.has_content_length) resp.body = http1::BodyKind::ContentLength;
  else resp.body = head_request ? http1::BodyKind::None : http1::BodyKind::UntilClose;

  ClientFraming framing = choose_framing(resp, 1, head_request);
  std::string wire;
  append_response_head(resp, framing, 1, true, wire);
  // A client's limits, not the proxy's request limits: the head may carry every field a
  // CGI header block holds (cgi::ResponseHeadParser::kMaxFields, kMaxHeadSize).
  http1::Limits limits;
  limits.max_head_size = 64 * 1024;
  limits.max_header_count = 256;
  http1::ResponseParser p(limits);
  http1::ResponseHead back;
  http1::HeadResult r = p.parse(wire, head_request ? "HEAD" : "GET", back);
  if (r.status != http1::ParseStatus::Done) {
    std::fprintf(stderr, "error %s\n%s\n", r.error.reason, wire.c_str());
    fail("the proxy's response head does not parse");
  }
  require(r.consumed == wire.size(), "the proxy's head size differs");
  require(back.status == resp.status, "status differs");
  if (!resp.reason.empty()) require(back.reason == resp.reason, "reason differs");
  // Every field the app sent arrives, in order, except hop-by-hop and framing ones; the
  // proxy adds its framing, Connection, and a Date when the app sent none.
  std::vector<std::pair<std::string_view, std::string_view>> want, got;
  bool app_date = false;
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding")) continue;
    app_date = app_date || iequals(h.name, "date");
    want.emplace_back(h.name, h.value);
  }
  for (const auto& h : back.headers) {
    if (iequals(h.name, "connection") || iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding"))
      continue;
    if (!app_date && iequals(h.name, "date")) continue;
    got.emplace_back(h.name, h.value);
  }
  require(want == got, "fields differ");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  Outcome whole = decode(in, nullptr, 0);
  Outcome pieces = decode(in, data, size);
  require(whole == pieces, "pieces change what the decoder reads");

  // STDOUT through the CGI head parser, as it arrives.
  cgi::ResponseHeadParser hp;
  cgi::ResponseHead head;
  if (hp.parse(whole.out, head) == cgi::ResponseHeadParser::Status::Done) {
    require(hp.consumed() <= whole.out.size(), "head consumed past STDOUT");
    check_client_head(head, false);
    check_client_head(head, true);
  }

  // PARAMS content: decode, encode, decode.
  std::vector<std::pair<std::string, std::string>> pairs;
  if (fastcgi::decode_params(in, [&](std::string_view n, std::string_view v) { pairs.emplace_back(n, v); })) {
    std::string enc;
    for (const auto& [n, v] : pairs) require(fastcgi::append_name_value(enc, n, v), "a decoded pair does not encode");
    std::vector<std::pair<std::string, std::string>> again;
    require(fastcgi::decode_params(enc, [&](std::string_view n, std::string_view v) { again.emplace_back(n, v); }),
            "encoded params do not decode");
    require(again == pairs, "params differ after a round trip");
  }
  return 0;
}
