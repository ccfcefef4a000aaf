// Response compression (route key `compress`) end to end: a Python worker (tests/apps/
// compress_app) and the testapp behind one proxy, real clients (curl --compressed and raw
// Accept-Encoding, nghttp) over HTTP/1.1, TLS and HTTP/2, bodies decoded by independent
// decoders (python3's gzip, the brotli CLI) and compared byte for byte with the worker's; the
// cases that must not be compressed; a stream of events that reaches the client as it is
// produced; a 20 MiB response to a slow reader with the proxy's memory watched; a reload that
// turns compression on and off while the worker keeps running; the access log's byte count.
#include <gtest/gtest.h>
#include <strings.h>
#include <zlib.h>

#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kApp = std::string(CORRAL_SOURCE_DIR) + "/tests/apps/compress_app/app.py";

// What the worker sends for /data?bytes=N (the same generator as compress_app/app.py).
std::string body_of(size_t n) {
  const char* words[] = {"alpha", "beta", "gamma", "order", "shipped", "pending", "price", "name"};
  std::string out = "[";
  for (size_t i = 0; out.size() < n; ++i)
    out += "{\"id\": " + std::to_string(i) + ", \"" + words[i % 8] + "\": \"" + words[(i * 7) % 8] +
           "\", \"qty\": " + std::to_string((i * 31) % 97) + "},";
  out.resize(n);
  return out;
}

// Decodes with an independent tool: python3's gzip module, or the brotli command.
std::string decode(const std::string& coding, const std::string& data) {
  std::vector<std::string> argv =
      coding == "gzip" ? std::vector<std::string>{"/usr/bin/python3", "-c",
                                                  "import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))"}
                       : std::vector<std::string>{"brotli", "-d", "-c"};
  ProcessResult r = run_process(argv, 20s, data);
  EXPECT_EQ(r.exit_code, 0) << coding << ": " << r.err.substr(0, 500) << " (" << data.size() << " bytes in)";
  return r.out;
}

// A gzip stream decoded as far as it goes (a stream still being written).
std::string gunzip_partial(std::string_view in) {
  z_stream z{};
  inflateInit2(&z, 15 + 16);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_SYNC_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc != Z_OK || z.avail_in == 0) break;
  }
  inflateEnd(&z);
  return out;
}

// The body of a chunked HTTP/1.1 message as far as it has arrived.
std::string dechunk(std::string_view raw) {
  size_t start = raw.find("\r\n\r\n");
  if (start == std::string_view::npos) return "";
  std::string_view rest = raw.substr(start + 4);
  std::string out;
  while (true) {
    size_t eol = rest.find("\r\n");
    if (eol == std::string_view::npos) break;
    size_t n = std::stoul(std::string(rest.substr(0, eol)), nullptr, 16);
    if (n == 0 || rest.size() < eol + 2 + n) break;
    out.append(rest.substr(eol + 2, n));
    rest.remove_prefix(eol + 2 + n + 2);
  }
  return out;
}

class CompressTest : public IntegrationTest {
 protected:
  void SetUp() override {
    AppSpec& c = config_.app("c");
    c.command = {"/usr/bin/python3", kApp};
    c.set("health_path", quote("/"));
    config_.app("demo");  // the testapp: a second app of another program, no compression
    config_.route("c", "/", "c.test").route_set("compress", "[\"br\", \"gzip\"]");
    config_.route("c", "/", "gz.test").route_set("compress", "[\"gzip\"]").route_set("gzip_level", "1");
    config_.route("c", "/", "off.test");
    config_.route("demo", "/", "");
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port()) + path; }
  HttpResponse get(const std::string& host, const std::string& path, const std::string& accept = "gzip, deflate, br",
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-H", "Host: " + host};
    if (!accept.empty()) args.insert(args.end(), {"-H", "Accept-Encoding: " + accept});
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url(path));
    return curl(args);
  }
};

// gzip and br, each over HTTP/1.1, HTTP/1.1 + TLS, HTTP/2 + TLS and h2c: the raw body
// decodes (independent decoders) to exactly the worker's bytes; the head says what was done.
TEST_F(CompressTest, RoundTripOverEveryProtocol) {
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start());
  const int tls_port = corral_->port(1);
  ASSERT_GT(tls_port, 0);
  const std::string expected = body_of(100 << 10);
  struct Proto {
    const char* name;
    std::vector<std::string> args;
    std::string base;
  };
  const std::vector<Proto> protos = {
      {"h1", {}, url("")},
      {"h1+tls", {"-k", "--http1.1"}, "https://localhost:" + std::to_string(tls_port)},
      {"h2+tls", {"-k", "--http2"}, "https://localhost:" + std::to_string(tls_port)},
      {"h2c", {"--http2-prior-knowledge"}, url("")},
  };
  for (const auto& p : protos) {
    for (std::string coding : {"gzip", "br"}) {
      std::vector<std::string> args = {"-H", "Host: c.test", "-H", "Accept-Encoding: " + coding};
      args.insert(args.end(), p.args.begin(), p.args.end());
      args.push_back(p.base + "/data?bytes=102400");
      HttpResponse r = curl(args);
      SCOPED_TRACE(std::string(p.name) + " " + coding);
      ASSERT_EQ(r.status, 200) << r.error;
      EXPECT_EQ(r.header("content-encoding"), coding);
      EXPECT_EQ(r.header("vary"), "Accept-Encoding");
      EXPECT_FALSE(has_header(r.headers, "content-length"));
      EXPECT_LT(r.body.size(), expected.size() / 3);
      EXPECT_TRUE(decode(coding, r.body) == expected);
      // curl --compressed decodes it itself.
      std::vector<std::string> c = {"-H", "Host: c.test", "--compressed"};
      c.insert(c.end(), p.args.begin(), p.args.end());
      c.push_back(p.base + "/data?bytes=102400&chunked=1");
      HttpResponse d = curl(c);
      ASSERT_EQ(d.status, 200) << d.error;
      EXPECT_EQ(d.header("content-encoding"), "br");  // curl offers both: the route prefers br
      EXPECT_TRUE(d.body == expected) << d.body.size() << " bytes";
    }
  }
  // nghttp (HTTP/2 over TLS), gzip asked for explicitly: nghttp inflates it itself, and the
  // access log shows what went over the wire.
  ProcessResult n = run_process({"nghttp", "-H", "accept-encoding: gzip", "-H", ":authority: gz.test",
                                 "https://127.0.0.1:" + std::to_string(tls_port) + "/data?bytes=50000"},
                                20s);
  ASSERT_EQ(n.exit_code, 0) << n.err;
  EXPECT_TRUE(n.out == body_of(50000)) << n.out.substr(0, 200);
  std::vector<std::string> logged;
  for (int i = 0; i < 50 && logged.empty(); ++i) {
    logged = log_lines_with("\"nghttp2/");
    if (logged.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(logged.size(), 1u);
  size_t at = logged[0].find("HTTP/2.0\" 200 ");
  ASSERT_NE(at, std::string::npos) << logged[0];
  EXPECT_LT(std::stoul(logged[0].substr(at + 14)), 50000u / 3) << logged[0];
  // The route that lists gzip only answers a br-only client as is (with Vary).
  HttpResponse brs = get("gz.test", "/data?bytes=5000", "br");
  EXPECT_EQ(brs.header("content-encoding"), "");
  EXPECT_EQ(brs.header("vary"), "Accept-Encoding");
  EXPECT_TRUE(brs.body == body_of(5000));
  // A route without compress, and the other app, are untouched.
  HttpResponse off = get("off.test", "/data?bytes=5000");
  EXPECT_EQ(off.header("content-encoding"), "");
  EXPECT_FALSE(has_header(off.headers, "vary"));
  EXPECT_TRUE(off.body == body_of(5000));
  HttpResponse demo = get("other.test", "/big?bytes=5000");
  EXPECT_EQ(demo.status, 200);
  EXPECT_EQ(demo.header("content-encoding"), "");
}

TEST_F(CompressTest, WhatIsNotCompressed) {
  ASSERT_NO_FATAL_FAILURE(start());
  struct Case {
    const char* what;
    std::string path, accept;
    bool vary;  ///< the response could have been compressed for another client
    int status = 200;
  };
  const std::vector<Case> cases = {
      {"206", "/data?bytes=5000&status=206&h=Content-Range:bytes%200-4999/9000", "gzip, br", false, 206},
      {"304", "/data?bytes=5000&status=304&h=ETag:%22v1%22", "gzip, br", false, 304},
      {"204", "/data?bytes=0&status=204", "gzip, br", false, 204},
      {"no-transform", "/data?bytes=5000&h=Cache-Control:public,%20no-transform", "gzip, br", false},
      {"already encoded", "/data?bytes=5000&h=Content-Encoding:identity", "gzip, br", false},
      {"small", "/data?bytes=1000", "gzip, br", false},
      {"not compressible type", "/data?bytes=5000&type=image/png", "gzip, br", false},
      {"q=0", "/data?bytes=5000", "gzip;q=0, br;q=0", true},
      {"*;q=0", "/data?bytes=5000", "identity, *;q=0", true},
      {"no Accept-Encoding", "/data?bytes=5000", "", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    HttpResponse r = get("c.test", c.path, c.accept);
    ASSERT_EQ(r.status, c.status) << r.error;
    EXPECT_NE(r.header("content-encoding"), "gzip");
    EXPECT_NE(r.header("content-encoding"), "br");
    EXPECT_EQ(has_header(r.headers, "vary"), c.vary);
    if (c.status == 200) {
      EXPECT_TRUE(r.body == body_of(r.body.size())) << r.body.size() << " bytes";
    }
    if (c.status == 200 || c.status == 206) {
      EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
    }
  }
  // The size limit is on the body: 1024 bytes and up are compressed (compress_min_size = 1KiB).
  EXPECT_EQ(get("c.test", "/data?bytes=1024").header("content-encoding"), "br");
  // An unknown length (chunked) is compressed whatever it turns out to be.
  EXPECT_EQ(get("c.test", "/data?bytes=10&chunked=1").header("content-encoding"), "br");
  // HEAD: never compressed; the GET's length and the Vary are what the client sees.
  std::vector<std::string> argv = {"curl", "-sS", "-I", "-H", "Host: c.test", "-H", "Accept-Encoding: gzip",
                                   url("/data?bytes=5000")};
  ProcessResult h = run_process(argv, 15s);
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_EQ(h.out.find("ontent-Encoding"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("Content-Length: 5000"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("Vary: Accept-Encoding"), std::string::npos) << h.out;
  // A strong ETag becomes weak once compressed; Accept-Ranges goes.
  HttpResponse e = get("c.test", "/data?bytes=5000&h=ETag:%22abc%22&h=Accept-Ranges:bytes", "gzip");
  EXPECT_EQ(e.header("content-encoding"), "gzip");
  EXPECT_EQ(e.header("etag"), "W/\"abc\"");
  EXPECT_FALSE(has_header(e.headers, "accept-ranges"));
  // Errors with a compressible body are compressed like any response.
  HttpResponse err = get("c.test", "/data?bytes=5000&status=503", "gzip");
  EXPECT_EQ(err.status, 503);
  EXPECT_EQ(err.header("content-encoding"), "gzip");
  EXPECT_TRUE(decode("gzip", err.body) == body_of(5000));
}

// A worker that sends one event every 400 ms: the client decodes the first event long
// before the worker is done (the codec is flushed whenever the worker goes quiet).
TEST_F(CompressTest, StreamingIsNotHeldBack) {
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("GET /stream?events=6&delay_ms=400 HTTP/1.1\r\nHost: c.test\r\nAccept-Encoding: gzip\r\n\r\n"));
  std::string raw;
  std::string seen;
  while (std::chrono::steady_clock::now() - t0 < 1500ms && seen.find("event 1 ") == std::string::npos) {
    raw += c.read_some(100ms);
    seen = gunzip_partial(dechunk(raw));
  }
  auto first_two = std::chrono::steady_clock::now() - t0;
  EXPECT_NE(raw.find("Content-Encoding: gzip"), std::string::npos) << raw.substr(0, 300);
  EXPECT_NE(seen.find("data: event 0 "), std::string::npos);
  EXPECT_NE(seen.find("data: event 1 "), std::string::npos);
  // The worker needs 2.4 s for all six; two events arrive decoded within 1.5 s.
  EXPECT_LT(first_two, 1500ms);
  EXPECT_EQ(seen.find("event 5"), std::string::npos);
  // And the whole stream completes and decodes.
  while (raw.find("\r\n0\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() - t0 < 10s)
    raw += c.read_some(200ms);
  std::string all = gunzip_partial(dechunk(raw));
  for (int i = 0; i < 6; ++i) EXPECT_NE(all.find("data: event " + std::to_string(i) + " "), std::string::npos) << i;
}

// 20 MiB of poorly compressible text to a client that reads slowly: the proxy's memory stays
// bounded (backpressure reaches the worker through the compressor) and every byte arrives.
TEST_F(CompressTest, LargeResponseToSlowReaderKeepsMemoryBounded) {
  ASSERT_NO_FATAL_FAILURE(start());
  const pid_t proxy = proxy_pid();
  ASSERT_GT(proxy, 0);
  ASSERT_EQ(get("c.test", "/data?bytes=200000").status, 200);  // warm: pools and buffers exist
  const long base = rss_kib(proxy);
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port(), 64 << 10));
  ASSERT_TRUE(c.send("GET /big?mib=20&random=1 HTTP/1.1\r\nHost: c.test\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"));
  std::string raw;
  long peak = base;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < 60s) {
    std::string got = c.read_some(50ms);
    if (got.empty() && c.closed()) break;
    raw += got;
    peak = std::max(peak, rss_kib(proxy));
    std::this_thread::sleep_for(5ms);  // about 10 MiB/s at most: far slower than the worker
  }
  ASSERT_TRUE(c.closed()) << "the response did not complete in time: " << raw.size() << " bytes";
  std::string body = gunzip_partial(dechunk(raw));
  EXPECT_EQ(body.size(), 20u << 20);
  std::printf("[compress] 20 MiB -> %zu bytes gzip to a slow reader; proxy RSS %ld KiB before, peak %ld KiB\n",
              dechunk(raw).size(), base, peak);
  // Without backpressure the proxy would hold most of the ~15 MiB of compressed output.
  EXPECT_LT(peak - base, 8 * 1024) << "proxy RSS grew from " << base << " to " << peak << " KiB";
}

// compress on and off by reload: applied by the proxy with the new snapshot, the worker kept.
TEST_F(CompressTest, ReloadTurnsCompressionOnAndOff) {
  config_ = ConfigBuilder(rt_.path());
  AppSpec& c = config_.app("c");
  c.command = {"/usr/bin/python3", kApp};
  config_.route("c", "/");
  ASSERT_NO_FATAL_FAILURE(start());
  auto worker = CorralProcess::worker_pids(corral_->status(), "c");
  ASSERT_EQ(worker.size(), 1u);
  EXPECT_EQ(get("any.test", "/data?bytes=5000").header("content-encoding"), "");

  config_.route_set("compress", "[\"gzip\"]").route_set("compress_min_size", "\"4KiB\"");
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // What the reload changed: the route, nothing else.
  EXPECT_NE(r.out.find("compress off -> gzip, compress_min_size changed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("app c:"), std::string::npos) << r.out;  // no "app c: new generation"
  HttpResponse on = get("any.test", "/data?bytes=5000");
  EXPECT_EQ(on.header("content-encoding"), "gzip");
  EXPECT_TRUE(decode("gzip", on.body) == body_of(5000));
  EXPECT_EQ(get("any.test", "/data?bytes=4000").header("content-encoding"), "");  // under the new minimum

  config_ = ConfigBuilder(rt_.path());
  AppSpec& again = config_.app("c");
  again.command = {"/usr/bin/python3", kApp};
  config_.route("c", "/");
  r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(get("any.test", "/data?bytes=5000").header("content-encoding"), "");
  EXPECT_EQ(CorralProcess::worker_pids(corral_->status(), "c"), worker) << "the worker was replaced";
}

// Four routes over two apps; a reload changes the second route only (gz.test: gzip level
// 1 -> 9, and br offered too). That route answers the new way; every other route answers as
// before (the same head but the Date, the same bytes once decoded); the reload's plan names
// that route alone; both apps keep their workers and the proxy stays.
TEST_F(CompressTest, ReloadOfTheSecondRouteLeavesTheOthersAlone) {
  ASSERT_NO_FATAL_FAILURE(start());
  // What a client sees, but the Date; the body decoded (where the compressor flushes depends
  // on how the worker's writes arrive, so the compressed bytes may differ from run to run).
  auto answer = [&](const std::string& host, const std::string& path, const std::string& accept) {
    HttpResponse r = get(host, path, accept);
    std::string out = std::to_string(r.status) + "\n";
    for (auto& [k, v] : r.headers)
      if (::strcasecmp(k.c_str(), "date") != 0) out += k + ": " + v + "\n";
    const std::string coding = r.header("content-encoding");
    return out + "\n" + (coding == "gzip" || coding == "br" ? decode(coding, r.body) : r.body);
  };
  struct Ask {
    std::string host, path, accept;
  };
  const std::vector<Ask> others = {
      {"c.test", "/data?bytes=50000", "gzip"},      {"c.test", "/data?bytes=50000", "br"},
      {"c.test", "/data?bytes=50000", ""},          {"c.test", "/data?bytes=500", "gzip, br"},
      {"off.test", "/data?bytes=50000", "gzip, br"}, {"other.test", "/big?bytes=50000", "gzip, br"},
  };
  std::vector<std::string> before;
  for (const auto& a : others) before.push_back(answer(a.host, a.path, a.accept));
  HttpResponse gz1 = get("gz.test", "/data?bytes=100000", "gzip");
  ASSERT_EQ(gz1.header("content-encoding"), "gzip");
  EXPECT_EQ(get("gz.test", "/data?bytes=100000", "br").header("content-encoding"), "");
  nlohmann::json st = corral_->status();
  const auto c = CorralProcess::worker_pids(st, "c"), demo = CorralProcess::worker_pids(st, "demo");
  ASSERT_EQ(c.size(), 1u);
  ASSERT_EQ(demo.size(), 1u);
  const pid_t proxy = proxy_pid();

  config_.route_set(1, "compress", "[\"gzip\", \"br\"]").route_set(1, "gzip_level", "9");
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string plan = r.out + r.err;
  EXPECT_NE(plan.find("route 2 (host gz.test path / -> app c (compress gzip br)): compress gzip -> gzip,br"),
            std::string::npos)
      << plan;
  EXPECT_NE(plan.find("gzip_level"), std::string::npos) << plan;
  for (const char* other : {"route 1", "route 3", "route 4", "app c:", "app demo:", "listener"})
    EXPECT_EQ(plan.find(other), std::string::npos) << other << " in:\n" << plan;

  // The second route: level 9 (smaller than level 1 for the same body), and br now.
  HttpResponse gz9 = get("gz.test", "/data?bytes=100000", "gzip");
  ASSERT_EQ(gz9.header("content-encoding"), "gzip");
  EXPECT_TRUE(decode("gzip", gz9.body) == body_of(100000));
  EXPECT_LT(gz9.body.size(), gz1.body.size()) << "gzip_level 9 did not apply";
  HttpResponse br = get("gz.test", "/data?bytes=100000", "br");
  EXPECT_EQ(br.header("content-encoding"), "br");
  EXPECT_TRUE(decode("br", br.body) == body_of(100000));
  // Every other route: as before.
  for (size_t i = 0; i < others.size(); ++i) {
    SCOPED_TRACE(others[i].host + others[i].path + " Accept-Encoding: " + others[i].accept);
    EXPECT_EQ(answer(others[i].host, others[i].path, others[i].accept), before[i]);
  }
  st = corral_->status();
  EXPECT_EQ(CorralProcess::worker_pids(st, "c"), c) << "app c's worker was replaced";
  EXPECT_EQ(CorralProcess::worker_pids(st, "demo"), demo) << "app demo's worker was replaced";
  EXPECT_EQ(proxy_pid(), proxy) << "the proxy was restarted";
}

// The access log counts the bytes sent: the compressed body; /metrics counts compressed
// responses and their bytes before and after.
TEST_F(CompressTest, AccessLogAndMetricsCountCompressedBytes) {
  config_.proxy("admin", quote("127.0.0.1:0"));
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = get("c.test", "/data?bytes=60000&marker=logbytes", "gzip");
  ASSERT_EQ(r.header("content-encoding"), "gzip");
  ASSERT_EQ(get("c.test", "/data?bytes=30000", "br").header("content-encoding"), "br");
  HttpResponse m = http_get(admin_port(), "/metrics");
  ASSERT_EQ(m.status, 200) << m.error;
  const std::string labels = "app=\"c\",route=\"c.test/\"";
  EXPECT_NE(m.body.find("corral_compressed_responses_total{" + labels + ",coding=\"gzip\"} 1\n"), std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("corral_compressed_responses_total{" + labels + ",coding=\"br\"} 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("corral_compression_bytes_total{" + labels + ",direction=\"in\"} 90000\n"), std::string::npos);
  size_t out = m.body.find("corral_compression_bytes_total{" + labels + ",direction=\"out\"} ");
  ASSERT_NE(out, std::string::npos);
  EXPECT_LT(std::stoul(m.body.substr(m.body.find("} ", out) + 2)), 90000u / 3);
  std::vector<std::string> lines;
  for (int i = 0; i < 50 && lines.empty(); ++i) {
    lines = log_lines_with("marker=logbytes");
    if (lines.empty()) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\" 200 " + std::to_string(r.body.size()) + " "), std::string::npos)
      << lines[0] << " (body " << r.body.size() << " bytes)";
}

TEST_F(CompressTest, BadSettingsAreRejectedWithFileLineAndKey) {
  rt_.write_file("bad.toml", "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\napp = \"a\"\ncompress = [\"br\", \"gzp\"]\n"
                             "\n[app.a]\ncommand = [\"/bin/true\"]\n");
  ProcessResult r = run_process({bin_path("corral-supervisor"), "--check", "-c", rt_.path() + "/bad.toml"}, 20s);
  EXPECT_NE(r.exit_code, 0);
  const std::string out = r.out + r.err;
  EXPECT_NE(out.find("bad.toml:6"), std::string::npos) << out;
  EXPECT_NE(out.find("compress"), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean 'gzip'?"), std::string::npos) << out;
  rt_.write_file("bad2.toml", "[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[route]]\napp = \"a\"\ncompress = [\"br\"]\n"
                              "brotli_level = 11\n\n[app.a]\ncommand = [\"/bin/true\"]\n");
  r = run_process({bin_path("corral-supervisor"), "--check", "-c", rt_.path() + "/bad2.toml"}, 20s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("bad2.toml:7"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("brotli_level must be from 0 to 9"), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace corral::itest
