// libFuzzer target for what crosses corral's control boundaries. Each input is read three ways:
//  1. as a control-channel message (common/control: one SEQPACKET record, either direction;
//     the supervisor decodes what a possibly compromised proxy sends): a decoded message
//     encodes, decodes again to the same type, and encodes to the same bytes; and as the
//     strings of messages the proxy builds from request bytes, which must always encode;
//  2. as a config snapshot (conf/snapshot, what the proxy decodes from SetConfig): a decoded
//     Config encodes and decodes to an equal Config;
//  3. as a control API request on control.sock, read as ControlApi does (common/http1 head,
//     Content-Length body), with the body as POST /apps/NAME/tune reads it (JSON →
//     parse_tuning → tuned_app against a running app).
// Crashes, UB, leaks and any disagreement are reported (abort).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/control/messages.h"
#include "common/http1/parser.h"
#include "conf/snapshot.h"
#include "supervisor/overrides.h"

using namespace corral;

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_control: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void control_message(std::string_view in) {
  auto m = control::decode(in);
  if (!m) {
    if (m.error().message().empty()) fail("a rejected message without a reason");
    return;
  }
  std::string enc = control::encode(*m);
  auto again = control::decode(enc);
  if (!again) fail("an encoded message does not decode", enc + " -> " + again.error().message());
  if (control::type_name(*again) != control::type_name(*m)) fail("the type changes", enc);
  if (control::encode(*again) != enc) fail("a message changes through encode/decode", enc);
}

/// Messages whose strings come from untrusted bytes (the proxy reports request paths and
/// methods it received; app names and paths come from the config): encoding never fails and
/// what it makes decodes to the same message type.
void encode_any(std::string_view in) {
  const size_t half = in.size() / 2;
  control::SlotRequests r;
  r.app = std::string(in.substr(0, half));
  r.requests.push_back(control::SlotRequestInfo{std::string(in.substr(half)), std::string(in.substr(0, 3 < in.size() ? 3 : in.size())),
                                                std::string(in), 1, "in_flight", ""});
  control::WorkerHung hung{std::string(in), 1, 2, std::string(in.substr(half))};
  for (const control::Message& m : {control::Message(r), control::Message(hung)}) {
    std::string enc = control::encode(m);
    auto again = control::decode(enc);
    if (!again) fail("an encoded message does not decode", enc + " -> " + again.error().message());
    if (control::type_name(*again) != control::type_name(m)) fail("the type changes", enc);
  }
}

void snapshot(std::string_view in) {
  auto c = conf::from_snapshot(in);
  if (!c) return;
  std::string enc = conf::to_snapshot(*c);
  auto again = conf::from_snapshot(enc);
  if (!again) fail("an encoded snapshot does not decode", again.error().message());
  if (!(*again == *c)) fail("a config changes through its snapshot", enc);
}

void control_api_request(std::string_view in) {
  http1::RequestParser parser;
  http1::RequestHead head;
  http1::HeadResult r = parser.parse(in, head);
  if (r.status != http1::ParseStatus::Done || head.body == http1::BodyKind::Chunked) return;
  if (in.size() - r.consumed < head.content_length) return;
  std::string_view target = head.target;
  std::string path(target.substr(0, target.find('?')));
  std::string body(in.substr(r.consumed, head.content_length));
  (void)path;
  static const conf::App running = [] {
    conf::App a;
    a.name = "app";
    a.kind = conf::AppKind::Wsgi;
    a.worker_class = "gthread";
    a.workers = 2;
    a.concurrency = 4;
    return a;
  }();
  auto json = nlohmann::json::parse(body, nullptr, false);
  auto tuning = supervisor::parse_tuning(json);
  if (!tuning) return;
  auto app = supervisor::tuned_app(running, *tuning);
  if (app && (app->workers < 1 || app->concurrency < 1)) fail("a tuning below one worker or one request");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  control_message(in);
  encode_any(in);
  snapshot(in);
  control_api_request(in);
  return 0;
}
