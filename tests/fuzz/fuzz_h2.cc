// libFuzzer target for the HTTP/2 front end. Each input is what a client sends after the
// connection preface (raw frames: SETTINGS, HEADERS with HPACK blocks, DATA, RST_STREAM, ...),
// given to one new Http2Session on an in-memory connection (h2_memory.cc: no sockets):
//  1. the session reads the whole input (in reads of whatever size it asks for);
//  2. the loop runs its timers, so the in-memory worker answers the requests that reached it
//     (every forwarded head must parse with common/http1 and match its body; see
//     h2_memory.cc) and the session writes the responses;
//  3. the client's end of stream, then the connection is destroyed.
// Every access-log line of the run is formatted in both formats: a JSON line must parse, a
// combined line must be one line. ASan/UBSan/LSan and the checks above report problems.
#include <event2/event.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/log.h"
#include "common/base/unique_fd.h"
#include "common/ev/loop.h"
#include "conf/config.h"
#include "proxy/access_log.h"
#include "proxy/client_connection.h"
#include "proxy/frontend/http1_session.h"
#include "proxy/runtime.h"
#include "proxy/session_host.h"
#include "proxy/upstream/pool.h"
#include "tests/fuzz/h2_memory.h"

using namespace corral;
using namespace corral::proxy;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

conf::Config fuzz_config() {
  conf::Config cfg;
  cfg.proxy.max_body_size = 64 * 1024;
  cfg.proxy.client_body_buffer_size = 8 * 1024;  // larger bodies spill to a temp file
  cfg.proxy.temp_dir = "/tmp";
  cfg.proxy.max_header_size = 4096;
  cfg.proxy.max_header_count = 32;
  cfg.proxy.h2_max_concurrent_streams = 8;
  cfg.proxy.h2_reset_rate = 5;   // bursts of 50: the abuse limits are reachable
  cfg.proxy.h2_flood_rate = 20;  // bursts of 200
  auto route = [&](std::string host, std::string path, std::string app) {
    conf::Route r;
    r.host = std::move(host);
    r.path = std::move(path);
    r.app = std::move(app);
    cfg.routes.push_back(r);
    return &cfg.routes.back();
  };
  route("", "/stream", "stream");
  route("", "/cgi", "cgi");
  route("", "/fcgi", "fcgi");
  route("", "/z", "web")->compress = {"br", "gzip"};
  route("", "/", "web");
  auto app = [&](std::string name, conf::AppKind kind, bool buffering) {
    conf::App a;
    a.name = std::move(name);
    a.kind = kind;
    a.concurrency = 2;
    a.queue_size = 2;
    a.request_buffering = buffering;
    cfg.apps.push_back(a);
  };
  app("cgi", conf::AppKind::Cgi, true);
  app("fcgi", conf::AppKind::Fastcgi, true);
  app("stream", conf::AppKind::Http, false);
  app("web", conf::AppKind::Http, true);
  return cfg;
}

class FuzzHost final : public SessionHost {
 public:
  FuzzHost() : pool_(loop_), ids_(0x5eed) {
    runtime_ = make_runtime(fuzz_config(), 1, dispatchers_);
    for (auto& [name, d] : dispatchers_) {
      control::SlotInfo slot;
      slot.app = name;
      slot.slot = 0;
      slot.generation = 1;
      slot.path = "/nonexistent/" + name + ".sock";  // never connected to: the worker is in memory
      slot.concurrency = 2;
      d->update_slots({slot});
    }
    combined_ = *AccessLog::open("/dev/null", conf::AccessLogFormat::Combined);
    json_ = *AccessLog::open("/dev/null", conf::AccessLogFormat::Json);
  }

  ev::Loop& loop() override { return loop_; }
  const std::shared_ptr<const Runtime>& runtime() const override { return runtime_; }
  UpstreamPool& pool() override { return pool_; }
  RequestIdGenerator& request_ids() override { return ids_; }
  void log_access(const AccessRecord& r) override {
    line_.clear();
    combined_->format(r, line_);
    if (line_.empty() || line_.back() != '\n' || line_.find('\n') != line_.size() - 1)
      fuzz::fail("combined access-log line is not one line", line_);
    line_.clear();
    json_->format(r, line_);
    if (!nlohmann::json::accept(line_)) fuzz::fail("JSON access-log line does not parse", line_);
  }
  void report_hung(const std::string&, int, uint64_t, std::string_view) override {}
  bool draining() const override { return false; }
  metrics::LoopCounters* counters() override { return &counters_; }
  void connection_closed(ClientConnection*) override {}
  std::unique_ptr<Http1Session> take_http1_session() override { return nullptr; }
  void give_back_http1_session(std::unique_ptr<Http1Session>) override {}

  /// Runs what is due now (zero-delay timers, posted functions), a few rounds.
  void run_due() {
    for (int i = 0; i < 4; ++i) event_base_loop(loop_.base(), EVLOOP_NONBLOCK);
  }

 private:
  ev::Loop loop_;
  std::map<std::string, std::shared_ptr<AppDispatcher>> dispatchers_;
  std::shared_ptr<const Runtime> runtime_;
  UpstreamPool pool_;
  RequestIdGenerator ids_;
  metrics::LoopCounters counters_;
  std::shared_ptr<AccessLog> combined_, json_;
  std::string line_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log::set_level(log::Level::Error);  // the session logs every malformed stream at debug/info
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FuzzHost* host = new FuzzHost();  // one loop and runtime for every input
  static std::string input;
  input.assign(kPreface);
  input.append(reinterpret_cast<const char*>(data), size);

  fuzz::MemoryWire& w = fuzz::wire();
  w.in = input;
  w.eof = false;
  w.out.clear();
  w.want_read = w.want_write = w.closed = w.write_shut = false;

  auto conn = std::make_unique<ClientConnection>(*host, UniqueFd(), "192.0.2.7", nullptr);
  conn->start();
  host->run_due();
  // The client's bytes, as fast as the session takes them.
  for (int round = 0; round < 1000 && !w.closed && !w.in.empty(); ++round) {
    w.pump(true, true);
    host->run_due();
  }
  // The workers answer; the session writes.
  for (int round = 0; round < 16 && !w.closed; ++round) {
    w.pump(false, true);
    host->run_due();
  }
  // The client goes away.
  w.eof = true;
  if (!w.closed) w.pump(true, false);
  host->run_due();
  conn.reset();
  host->run_due();
  return 0;
}
