// Hostile HTTP/2 input: the rules of RFC 9113 that bind a server or an intermediary, one case
// each (tests/hostile/README.md lists them with their sections), against the same daemons as
// the HTTP/1.x cases. The frames come from h2_hostile.py (hand-written frames, python3-hpack),
// driven line by line over a pipe. Each case asserts the exact answer (GOAWAY code and a
// closed connection, or RST_STREAM code / status on the stream with the connection kept and
// its next stream served), what the worker received (nothing, or the sanitised request, which
// corral's own strict parser accepts), and that a fresh client is served afterwards.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "tests/hostile/hostile.h"
#include "tests/integration/harness/clients.h"

extern char** environ;

namespace corral::hostile {
namespace {

using V = std::vector<Forwarded>;

// RFC 9113 §7 error codes.
constexpr int kNoError = 0, kProtocolError = 1, kFlowControlError = 3, kStreamClosed = 5, kFrameSizeError = 6,
              kRefusedStream = 7, kCompressionError = 9;

enum class Expect {
  Goaway,  ///< GOAWAY(code), the connection closed, no stream answered
  Reset,   ///< RST_STREAM(code) on `stream`; the connection kept, its next stream served
  Status,  ///< a response with status `code` on `stream`; the connection kept
};

struct H2Case {
  std::string name;
  std::string rule;  ///< "RFC 9113 §5.1.1"
  Expect expect = Expect::Reset;
  int code = kProtocolError;
  int stream = 1;
  /// Requests the worker must have received (the follow-up streams and probes not counted).
  size_t forwarded = 0;
  std::function<void(const V&)> check_worker;
};

void PrintTo(const H2Case& c, std::ostream* os) { *os << c.name << " (" << c.rule << ")"; }

struct H2CaseName {
  std::string operator()(const ::testing::TestParamInfo<H2Case>& info) const { return info.param.name; }
};

// ---- the frame writer, one python process for the whole binary --------------------------

class Client {
 public:
  bool start(int port) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::string script = std::string(CORRAL_SOURCE_DIR) + "/tests/hostile/h2_hostile.py";
    std::string p = std::to_string(port);
    const char* argv[] = {"/usr/bin/python3", script.c_str(), "127.0.0.1", p.c_str(), "--serve", nullptr};
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, const_cast<char**>(argv), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    return rc == 0;
  }
  void stop() {
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
    to_ = from_ = -1;
    if (pid_ > 0) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
      }
    }
    pid_ = -1;
  }
  /// Runs one case; a JSON object, or null when the client did not answer in time.
  nlohmann::json run(const std::string& name) {
    std::string line = name + "\n";
    if (::write(to_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return nullptr;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string out = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return nlohmann::json::parse(out, nullptr, false);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return nullptr;
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char b[4096];
      ssize_t n = ::read(from_, b, sizeof b);
      if (n <= 0) return nullptr;
      buf_.append(b, static_cast<size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buf_;
};

Client g_client;

// The frame's own requests, not part of a case: follow-up streams of h2_hostile.py, the
// fresh-client probe below, the supervisor's readiness probe.
bool frame_request(const Forwarded& f) {
  return f.target.rfind("/?followup=", 0) == 0 || f.target == "/?h2-probe" || f.target == "/hostile-ready";
}

void run_h2_case(const H2Case& c) {
  SCOPED_TRACE(c.rule + " — case " + c.name);
  Daemons::clear_captures();
  nlohmann::json r = g_client.run(c.name);
  ASSERT_TRUE(r.is_object()) << "no result from h2_hostile.py";
  ASSERT_FALSE(r.contains("error")) << r.dump();
  const std::string sid = std::to_string(c.stream);
  switch (c.expect) {
    case Expect::Goaway:
      EXPECT_EQ(r["goaway"], c.code) << r.dump();
      EXPECT_TRUE(r["closed"].get<bool>()) << "the connection ends after GOAWAY: " << r.dump();
      EXPECT_TRUE(r["rst"].empty()) << r.dump();
      break;
    case Expect::Reset:
      EXPECT_EQ(r["rst"], nlohmann::json::array({nlohmann::json::array({c.stream, c.code})})) << r.dump();
      EXPECT_FALSE(r["status"].contains(sid)) << "no answer on a reset stream: " << r.dump();
      break;
    case Expect::Status:
      EXPECT_EQ(r["status"].value(sid, 0), c.code) << r.dump();
      for (auto& x : r["rst"]) EXPECT_EQ(x[1], kNoError) << "only RST_STREAM(NO_ERROR) after an answer: " << r.dump();
      break;
  }
  if (c.expect != Expect::Goaway) {
    // A stream error leaves the connection alone: its next stream is served at once.
    EXPECT_TRUE(r["goaway"].is_null()) << r.dump();
    EXPECT_FALSE(r["closed"].get<bool>()) << r.dump();
    EXPECT_EQ(r.value("followup", nlohmann::json()), 200) << "the next stream on the connection: " << r.dump();
  }

  // Another client, on another connection, is served at once.
  itest::HttpResponse other =
      itest::curl({"--http2-prior-knowledge", "-m", "3", "http://127.0.0.1:" + std::to_string(Daemons::port()) + "/?h2-probe"});
  EXPECT_EQ(other.status, 200) << "a fresh HTTP/2 client was not served: " << other.error;

  // What the worker saw: nothing of a refused request; a forwarded one is the sanitised
  // request, which corral's own strict parser accepts.
  V seen;
  for (auto& f : Daemons::captures())
    if (!frame_request(f)) seen.push_back(std::move(f));
  std::string listing;
  for (auto& f : seen) listing += "[" + f.app + " " + f.read + "]\n" + f.raw_head + "\n";
  EXPECT_EQ(seen.size(), c.forwarded) << "requests the worker received:\n" << listing;
  for (auto& f : seen) {
    EXPECT_EQ(f.read, "ok") << f.raw_head;
    EXPECT_EQ(f.target.find("/bad/"), std::string::npos) << "a refused request reached the worker:\n" << f.raw_head;
    http1::RequestParser parser;
    http1::RequestHead head;
    auto pr = parser.parse(f.raw_head, head);
    EXPECT_EQ(pr.status, http1::ParseStatus::Done)
        << "corral's parser rejects the forwarded head (" << pr.error.reason << "):\n" << f.raw_head;
  }
  if (seen.size() == c.forwarded && c.check_worker) c.check_worker(seen);
}

// ---- the cases ---------------------------------------------------------------------------

H2Case goaway(std::string name, std::string rule, int code, size_t forwarded = 0) {
  return {std::move(name), std::move(rule), Expect::Goaway, code, 1, forwarded, {}};
}
H2Case reset(std::string name, std::string rule, int code = kProtocolError, int stream = 1) {
  return {std::move(name), std::move(rule), Expect::Reset, code, stream, 0, {}};
}
H2Case answered(std::string name, std::string rule, int status, std::function<void(const V&)> check = {},
                size_t forwarded = 1) {
  return {std::move(name), std::move(rule), Expect::Status, status, 1, forwarded, std::move(check)};
}

std::vector<H2Case> streams() {
  const std::string s511 = "RFC 9113 §5.1.1", s51 = "RFC 9113 §5.1", s512 = "RFC 9113 §5.1.2";
  return {
      goaway("even_stream_id", s511, kProtocolError),
      goaway("stream_id_zero", "RFC 9113 §6.2", kProtocolError),
      goaway("lower_stream_id", s511, kProtocolError, 1),
      goaway("skipped_stream_id", s511, kProtocolError, 1),
      goaway("idle_stream_skipped", s511, kProtocolError, 1),
      goaway("reused_closed_stream", s511, kProtocolError, 41),
      goaway("reused_stream_just_closed", s51, kStreamClosed, 1),
      goaway("headers_after_end_stream", s51, kStreamClosed, 1),
      goaway("data_after_end_stream", s51, kStreamClosed, 1),
      reset("trailers_after_reset_are_ignored", s51),
      goaway("data_on_idle_stream", s51, kProtocolError),
      goaway("rst_on_idle_stream", "RFC 9113 §6.4", kProtocolError),
      goaway("window_update_on_idle_stream", s51, kProtocolError),
      goaway("max_concurrent_streams_exceeded", s512, kProtocolError),
      reset("concurrent_streams_before_ack", s512, kRefusedStream, 9),
  };
}

std::vector<H2Case> frames() {
  return {
      goaway("data_on_stream_zero", "RFC 9113 §6.1", kProtocolError),
      goaway("settings_on_stream", "RFC 9113 §6.5", kProtocolError),
      goaway("settings_bad_length", "RFC 9113 §6.5", kFrameSizeError),
      goaway("settings_ack_with_payload", "RFC 9113 §6.5", kFrameSizeError),
      goaway("settings_enable_push_2", "RFC 9113 §6.5.2", kProtocolError),
      goaway("settings_window_too_large", "RFC 9113 §6.5.2", kFlowControlError),
      goaway("settings_frame_size_too_small", "RFC 9113 §6.5.2", kProtocolError),
      goaway("ping_bad_length", "RFC 9113 §6.7", kFrameSizeError),
      goaway("ping_on_stream", "RFC 9113 §6.7", kProtocolError),
      goaway("goaway_on_stream", "RFC 9113 §6.8", kProtocolError),
      goaway("push_promise_from_client", "RFC 9113 §8.4", kProtocolError),
      goaway("continuation_without_headers", "RFC 9113 §6.10", kProtocolError),
      goaway("frame_inside_header_block", "RFC 9113 §4.3", kProtocolError),
      goaway("hpack_garbage", "RFC 9113 §4.3", kCompressionError),
      goaway("frame_too_large", "RFC 9113 §4.2", kFrameSizeError),
      goaway("headers_padding_too_long", "RFC 9113 §6.2", kProtocolError),
      goaway("window_update_zero_connection", "RFC 9113 §6.9", kProtocolError),
      goaway("window_update_zero_stream", "RFC 9113 §6.9", kProtocolError),
      goaway("window_overflow_connection", "RFC 9113 §6.9.1", kFlowControlError),
      goaway("priority_self_dependency", "RFC 9113 §5.3.1", kProtocolError),
      goaway("priority_bad_length", "RFC 9113 §6.3", kFrameSizeError),
  };
}

std::vector<H2Case> fields() {
  const std::string s821 = "RFC 9113 §8.2.1", s822 = "RFC 9113 §8.2.2", s83 = "RFC 9113 §8.3", s831 = "RFC 9113 §8.3.1";
  std::vector<H2Case> v = {
      reset("uppercase_field_name", "RFC 9113 §8.2"),
      reset("field_name_with_colon", s821),
      reset("field_name_with_space", s821),
      reset("field_name_non_ascii", s821),
      reset("empty_field_name", s821),
      reset("field_value_cr", s821),
      reset("field_value_lf", s821),
      reset("field_value_nul", s821),
      reset("field_value_ctl", "RFC 9110 §5.5"),
      reset("field_value_del", "RFC 9110 §5.5"),
      reset("field_value_leading_space", s821),
      reset("field_value_trailing_tab", s821),
      reset("connection_specific_connection", s822),
      reset("connection_specific_keep_alive", s822),
      reset("connection_specific_proxy_connection", s822),
      reset("connection_specific_transfer_encoding", s822),
      reset("connection_specific_upgrade", s822),
      reset("te_not_trailers", s822),
      reset("pseudo_after_regular", s83),
      reset("unknown_pseudo", s83),
      reset("response_pseudo_in_request", s83),
      reset("duplicate_path", s83),
      reset("missing_method", s831),
      reset("missing_scheme", s831),
      reset("missing_path", s831),
      reset("empty_path", s831),
      reset("path_not_absolute", s831),
      reset("path_absolute_form", s831),
      reset("path_asterisk_not_options", s831),
      reset("path_with_space", s831),
      reset("path_with_ctl", s831),
      reset("path_with_del", s831),
      reset("path_non_ascii", s831),
      reset("path_with_fragment", s831),
      reset("path_bad_percent", s831),
      reset("path_with_quote", s831),
      reset("path_with_backslash", s831),
      reset("scheme_not_http", s831),
      reset("scheme_invalid", s831),
      reset("empty_scheme", s831),
      reset("method_not_token", s831),
      reset("method_with_space", s831),
      reset("empty_method", s831),
      reset("authority_userinfo", s831),
      reset("authority_with_space", s831),
      reset("authority_non_ascii", s831),
      reset("authority_bad_port", s831),
      reset("authority_two_colons", s831),
      reset("authority_open_bracket", s831),
      reset("empty_authority", s831),
      reset("authority_host_differ", s831),
      reset("two_host_fields", s831),
      reset("host_userinfo", s831),
      reset("no_authority_no_host", s831),
      reset("connect_with_path", "RFC 9113 §8.5"),
      reset("connect_without_authority", "RFC 9113 §8.5"),
      reset("protocol_without_connect", "RFC 8441 §4"),
      answered("connect_plain", "RFC 9113 §8.5", 501, {}, 0),
      reset("content_length_not_number", "RFC 9113 §8.1.1"),
      reset("content_length_twice", "RFC 9113 §8.1.1"),
      reset("content_length_longer", "RFC 9113 §8.1.1"),
      reset("content_length_shorter", "RFC 9113 §8.1.1"),
      reset("content_length_without_body", "RFC 9113 §8.1.1"),
      reset("extended_connect_bad_path", "RFC 8441 §4"),
      answered("too_many_fields", "RFC 9110 §5.4", 431, {}, 0),
      answered("field_name_too_long", "RFC 9110 §5.4", 431, {}, 0),
      answered("method_too_long", "RFC 9112 §3", 501, {}, 0),
      answered("options_max_forwards_zero", "RFC 9110 §7.6.2", 200, {}, 0),
      answered("trace_max_forwards_zero", "RFC 9110 §7.6.2", 501, {}, 0),
      answered("max_forwards_invalid", "RFC 9110 §7.6.2", 400, {}, 0),
      reset("trailers_with_pseudo_header", "RFC 9113 §8.1"),
      reset("trailers_without_end_stream", "RFC 9113 §8.1"),
      reset("trailers_connection_specific", s822),
  };
  // Well-formed requests: the sanitised HTTP/1.1 form reaches the worker.
  v.push_back(answered("te_trailers_is_dropped", s822, 200, [](const V& f) {
    EXPECT_FALSE(f[0].header("te").has_value()) << f[0].raw_head;
  }));
  v.push_back(answered("te_trailers_any_case", s822, 200, [](const V& f) {
    EXPECT_FALSE(f[0].header("te").has_value()) << f[0].raw_head;
  }));
  v.push_back(answered("authority_host_case_differs", s831, 200, [](const V& f) {
    EXPECT_EQ(f[0].all("host").size(), 1u) << f[0].raw_head;
  }));
  v.push_back(answered("options_asterisk", "RFC 9110 §9.3.7", 200, {}, 0));  // the proxy answers it
  v.push_back(answered("max_forwards_decremented", "RFC 9110 §7.6.2", 200, [](const V& f) {
    EXPECT_EQ(f[0].method, "OPTIONS");
    EXPECT_EQ(f[0].all("max-forwards"), std::vector<std::string>{"4"}) << f[0].raw_head;
  }));
  v.push_back(answered("via_names_http2", "RFC 9110 §7.6.3", 200, [](const V& f) {
    EXPECT_EQ(f[0].all("via"), std::vector<std::string>{"2 corral"}) << f[0].raw_head;
  }));
  v.push_back(answered("host_without_authority", s831, 200, [](const V& f) {
    EXPECT_EQ(f[0].all("host").size(), 1u) << f[0].raw_head;
    EXPECT_EQ(f[0].target, "/?case=host_without_authority");
  }));
  v.push_back(answered("cookie_crumbs_joined", "RFC 9113 §8.2.3", 200, [](const V& f) {
    EXPECT_EQ(f[0].all("cookie"), std::vector<std::string>{"a=1; b=2"}) << f[0].raw_head;
  }));
  v.push_back(answered("trailers_are_dropped", "RFC 9113 §8.1", 200, [](const V& f) {
    EXPECT_EQ(f[0].body, "hello");
    EXPECT_EQ(f[0].header("content-length"), "5");
    EXPECT_FALSE(f[0].header("x-trailer").has_value()) << f[0].raw_head;
  }));
  return v;
}

class H2Rules : public ::testing::TestWithParam<H2Case> {};

TEST_P(H2Rules, Case) { run_h2_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Streams, H2Rules, ::testing::ValuesIn(streams()), H2CaseName());
INSTANTIATE_TEST_SUITE_P(Frames, H2Rules, ::testing::ValuesIn(frames()), H2CaseName());
INSTANTIATE_TEST_SUITE_P(Fields, H2Rules, ::testing::ValuesIn(fields()), H2CaseName());

class DaemonsEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    Daemons::start([](itest::ConfigBuilder& cfg) {
      cfg.proxy("max_body_size", itest::quote("64KiB"));
      cfg.proxy("h2_max_concurrent_streams", "4");
    });
    ASSERT_TRUE(g_client.start(Daemons::port()));
  }
  void TearDown() override {
    g_client.stop();
    Daemons::stop();
  }
};

[[maybe_unused]] ::testing::Environment* const kEnv = ::testing::AddGlobalTestEnvironment(new DaemonsEnv);

}  // namespace
}  // namespace corral::hostile
