// Request bodies end to end: Expect: 100-continue answered by the proxy (HTTP/1.1 with raw
// sockets and curl, HTTP/2 frame by frame), bodies above client_body_buffer_size spilled to
// an unlinked temp file and streamed to every app kind byte-exact (HTTP/1.1 Content-Length
// and chunked, h2c with and without content-length), no temp file or descriptor left behind,
// and request_buffering = false streaming the body to the worker as it arrives (turned on
// by a reload; chunked, HTTP/2, bad framing aborting the worker's request; an answer the
// worker gives before the body's end delivered whole whatever the client does next;
// a worker slower than the client costing no 408).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps";
const std::string kH2Body = std::string(CORRAL_SOURCE_DIR) + "/tests/integration/h2raw/h2body.py";

std::string sha256_hex(std::string_view data) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[d[i] >> 4]);
    out.push_back(kHex[d[i] & 15]);
  }
  return out;
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 4) {
    uint32_t v = rng();
    for (size_t k = 0; k < 4 && i + k < n; ++k) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

// What the proxy holds open that points at a deleted file (a temp file not closed).
std::vector<std::string> deleted_fds(pid_t pid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code ec2;
    auto target = fs::read_symlink(e.path(), ec2);
    if (!ec2 && target.string().find("(deleted)") != std::string::npos) out.push_back(target.string());
  }
  return out;
}

class RequestBodyTest : public IntegrationTest {
 protected:
  void add_all_kinds() {
    config_.proxy("max_body_size", quote("64MiB"));
    config_.proxy("admin", quote("127.0.0.1:0"));
    AppSpec& h = config_.app("web");
    h.workers(2).concurrency(4);
    AppSpec& f = config_.app("fcgi");
    f.kind = "fastcgi";
    f.command = {bin_path("corral-fcgi-hello")};
    f.env.erase("TESTAPP_LOG");
    f.workers(1);
    AppSpec& c = config_.app("cgi");
    c.kind = "cgi";
    c.command.clear();
    c.env.erase("TESTAPP_LOG");
    c.set("root", quote(kApps + "/cgi")).workers(1).concurrency(2);
    AppSpec& w = config_.app("py");
    w.kind = "wsgi";
    w.command.clear();
    w.env.erase("TESTAPP_LOG");
    w.set("module", quote("pep3333_app"));
    w.set("python_path", "[" + quote(kApps + "/wsgi_pep3333") + "]");
    w.set("worker_class", quote("sync"));
    w.workers(1);
    config_.route("fcgi", "/", "fcgi.test");
    config_.route("py", "/", "py.test");
    config_.route("cgi", "/cgi-bin");
    config_.route("web", "/");
  }
  double metric(const std::string& name) {
    HttpResponse m = http_get(admin_port(), "/metrics");
    size_t at = m.body.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    return std::strtod(m.body.c_str() + at + name.size() + 2, nullptr);
  }
  // Uploads `file` with curl; `how`: "cl" (Content-Length), "chunked", "h2" (h2c with
  // content-length), "h2-nolen" (h2c without a length).
  HttpResponse upload(const std::string& file, const std::string& url, const std::string& how,
                      std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data-binary", "@" + file, "-H", "Content-Type: application/octet-stream",
                                     "-H", "Expect:"};
    if (how == "chunked" || how == "h2-nolen") args.insert(args.end(), {"-H", "Transfer-Encoding: chunked"});
    if (how == "h2" || how == "h2-nolen") args.push_back("--http2-prior-knowledge");
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url);
    return curl(args, 120s);
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port()) + path; }
  /// Requests app `app`'s workers are serving now (corral_worker_in_flight, summed).
  int in_flight(const std::string& app) {
    HttpResponse m = http_get(admin_port(), "/metrics");
    const std::string prefix = "\ncorral_worker_in_flight{app=\"" + app + "\",";
    int n = 0;
    for (size_t at = m.body.find(prefix); at != std::string::npos; at = m.body.find(prefix, at + 1))
      n += std::atoi(m.body.c_str() + m.body.find("} ", at) + 2);
    return n;
  }
};

// Every app kind gets every size byte-exact, however the client framed it; the bodies above
// 64 KiB went through temp files, and none is left open afterwards.
TEST_F(RequestBodyTest, UploadsArriveByteExactAtEveryAppKind) {
  add_all_kinds();
  ASSERT_NO_FATAL_FAILURE(start());
  // The default temp_dir: runtime_dir/body, made by the supervisor, private.
  struct stat st {};
  ASSERT_EQ(::stat((rt_.runtime_dir() + "/body").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  const std::vector<size_t> sizes = {0, 65535, 65536, 65537, 10u << 20, 50u << 20};
  std::map<size_t, std::string> files, hashes;
  for (size_t n : sizes) {
    std::string data = random_bytes(n, static_cast<uint32_t>(n + 1));
    files[n] = rt_.write_file("body-" + std::to_string(n), data);
    hashes[n] = sha256_hex(data);
  }
  struct Kind {
    std::string name, path, host;
    bool hashes;  // answers "HEX BYTES" (else echoes the body)
  };
  const std::vector<Kind> kinds = {{"http", "/sha256", "", true},
                                   {"fastcgi", "/", "fcgi.test", false},
                                   {"cgi", "/cgi-bin/echo.pl", "", false},
                                   {"wsgi", "/sha256", "py.test", true}};
  int requests = 0;
  for (const auto& k : kinds) {
    for (size_t n : sizes) {
      for (std::string how : {"cl", "chunked", "h2", "h2-nolen"}) {
        // The largest body once per protocol is enough (it is the slow one).
        if (n == (50u << 20) && (how == "chunked" || how == "h2")) continue;
        std::vector<std::string> extra;
        if (!k.host.empty()) extra = {"-H", "Host: " + k.host};
        HttpResponse r = upload(files[n], url(k.path), how, extra);
        ++requests;
        std::string what = k.name + " " + std::to_string(n) + " bytes " + how;
        ASSERT_EQ(r.status, 200) << what << ": " << r.error << r.body.substr(0, 200);
        if (k.hashes) {
          EXPECT_EQ(r.body, hashes[n] + " " + std::to_string(n) + "\n") << what;
        } else {
          EXPECT_EQ(r.body.size(), n) << what;
          EXPECT_EQ(sha256_hex(r.body), hashes[n]) << what;
        }
      }
    }
  }
  std::printf("[uploads] %d uploads byte-exact (4 kinds x 6 sizes x h1/h2, Content-Length/chunked)\n", requests);
  // Every temp file is closed once its request is over, and none is left in temp_dir.
  pid_t pid = proxy_pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(deleted_fds(pid), std::vector<std::string>{});
  EXPECT_TRUE(fs::is_empty(rt_.runtime_dir() + "/body"));
  double spilled = metric("corral_request_bodies_spilled_total");
  // 10 and 50 MiB and 64 KiB + 1 spill; 64 KiB and less stay in memory.
  EXPECT_GE(spilled, 4 * (3 + 4 + 2)) << "bodies above client_body_buffer_size must go to temp files";
  EXPECT_LE(spilled, 4 * (4 + 4 + 2));
  EXPECT_EQ(metric("corral_request_body_temp_errors_total"), 0);
}

// A client that disappears mid-upload, and one cancelled while its body waits in the queue:
// their temp files are closed at once.
TEST_F(RequestBodyTest, AbandonedUploadsLeaveNoTempFile) {
  config_.proxy("max_body_size", quote("64MiB"));
  config_.app("web").workers(1).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  pid_t pid = proxy_pid();
  ASSERT_GT(pid, 0);
  std::string part = random_bytes(3u << 20, 7);
  {
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port()));
    ASSERT_TRUE(c.send("POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n"));
    ASSERT_TRUE(c.send(part));
    // The body is in a temp file now (3 MiB > 64 KiB).
    bool seen = false;
    for (int i = 0; i < 50 && !seen; ++i) {
      seen = !deleted_fds(pid).empty();
      if (!seen) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(seen) << "no temp file while a 3 MiB body is being received";
  }  // the client goes away mid-body
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    gone = deleted_fds(pid).empty();
    if (!gone) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(gone) << "the temp file of an abandoned upload is still open";
  // A body the client stops sending: 408 after client_body_timeout is covered by the h1
  // tests; a completed upload after all this still works.
  std::string file = rt_.write_file("small", random_bytes(200000, 3));
  HttpResponse r = upload(file, url("/sha256"), "cl");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(deleted_fds(pid), std::vector<std::string>{});
}

class ExpectTest : public RequestBodyTest {
 protected:
  void SetUp() override {
    config_.proxy("max_body_size", quote("1MiB"));
    config_.app("web").workers(1).concurrency(2);
    config_.route("web", "/sha256");
    config_.route("web", "/echo");
  }
  // Sends a head and reads what comes back before any body byte is sent.
  std::string answer_to_head(RawClient& c, const std::string& head) {
    EXPECT_TRUE(c.connect_tcp(port()));
    EXPECT_TRUE(c.send(head));
    return c.read_some(2s);
  }
};

TEST_F(ExpectTest, Http1ContinueComesBeforeTheBodyAndExpectNeverReachesTheWorker) {
  ASSERT_NO_FATAL_FAILURE(start());
  std::string body = random_bytes(300000, 11);
  for (char& ch : body) ch = static_cast<char>('a' + static_cast<unsigned char>(ch) % 26);  // JSON-safe
  RawClient c;
  std::string got = answer_to_head(
      c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\nExpect: 100-continue\r\n\r\n");
  ASSERT_EQ(got, "HTTP/1.1 100 Continue\r\n\r\n") << "the proxy must ask for the body itself";
  ASSERT_TRUE(c.send(body));
  auto rs = c.read_responses(2, 10s);  // the 100 (parsed as a response) and the 200
  ASSERT_EQ(rs.size(), 2u) << c.received().substr(0, 300);
  EXPECT_EQ(rs[0].status, 100);
  ASSERT_EQ(rs[1].status, 200);
  nlohmann::json e = parse_echo(rs[1].body);
  ASSERT_TRUE(e.is_object()) << rs[1].body.substr(0, 200);
  EXPECT_EQ(echo_headers(e, "expect"), std::vector<std::string>{}) << "Expect went upstream";
  EXPECT_EQ(e.value("body", std::string()).size(), body.size());
  EXPECT_TRUE(e.value("body", std::string()) == body) << "the body changed on the way";
  // The connection stays usable.
  ASSERT_TRUE(c.send("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto more = c.read_responses(3, 5s);
  ASSERT_EQ(more.size(), 3u);
  EXPECT_EQ(more[2].status, 200);
}

TEST_F(ExpectTest, Http1FinalAnswersComeWithoutReadingTheBody) {
  ASSERT_NO_FATAL_FAILURE(start());
  struct Case {
    std::string head;
    int status;
  } cases[] = {
      {"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n", 413},
      {"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 200-ok\r\n\r\n", 417},
      {"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 404},
  };
  for (auto& k : cases) {
    RawClient c;
    std::string got = answer_to_head(c, k.head);
    auto rs = parse_responses(got);
    ASSERT_EQ(rs.size(), 1u) << k.status << ": " << got;
    EXPECT_EQ(rs[0].status, k.status) << got;
    EXPECT_EQ(got.find("100 Continue"), std::string::npos) << "asked for a body it will not take: " << got;
    EXPECT_EQ(rs[0].header("Connection"), "close");
    // A client that sends the body anyway: read and dropped, then the connection closes
    // (lingering), without a reset that could destroy the answer.
    c.send(std::string(k.status == 413 ? 100000 : 10, 'x'));
    c.read_until_close(8s);
    EXPECT_TRUE(c.closed()) << k.status;
  }
  // An HTTP/1.0 client's Expect is ignored: no 100 and no 417, just the answer.
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send("POST /sha256 HTTP/1.0\r\nExpect: 100-continue\r\nExpect: 200-ok\r\nContent-Length: 3\r\n\r\nabc"));
  std::string all = c.read_until_close(5s);
  auto rs = parse_responses(all);
  ASSERT_EQ(rs.size(), 1u) << all;
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(rs[0].body, sha256_hex("abc") + " 3\n");
  // Counted as the proxy's own answers.
  EXPECT_FALSE(log_lines_with("\" 417 ").empty());
}

TEST_F(ExpectTest, CurlWaitsForTheContinueOfLargeUploads) {
  ASSERT_NO_FATAL_FAILURE(start());
  // curl sends Expect: 100-continue on its own for bodies above 1 MiB (and here for 900 KB
  // because of the header); it waits up to --expect100-timeout for the 100: 60 s here, so
  // a missing 100 fails the test through curl's 15 s limit.
  std::string data = random_bytes(900000, 5);
  std::string file = rt_.write_file("b", data);
  HttpResponse r = curl({"--data-binary", "@" + file, "-H", "Expect: 100-continue", "--expect100-timeout", "60",
                         url("/sha256")},
                        15s);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, sha256_hex(data) + " 900000\n");
  // Over the limit: curl gets the 413 at once and does not send the body.
  std::string big = rt_.write_file("big", random_bytes(3u << 20, 6));
  r = curl({"--data-binary", "@" + big, "--expect100-timeout", "60", url("/sha256")}, 15s);
  EXPECT_EQ(r.status, 413) << r.error;
}

TEST_F(ExpectTest, Http2ContinueAndFinalAnswers) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto h2 = [&](const std::string& scenario, const std::string& path, size_t size) {
    ProcessResult p = run_process({"/usr/bin/python3", kH2Body, "127.0.0.1", std::to_string(port()), scenario, path,
                                   std::to_string(size)},
                                  20s);
    auto j = nlohmann::json::parse(p.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << p.out << p.err;
    return j;
  };
  // Asked: a non-final 100 before any DATA, then the worker's answer over the whole body.
  nlohmann::json j = h2("expect", "/sha256", 100000);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["statuses"], nlohmann::json::array({100, 200})) << j.dump();
  std::string body;
  for (size_t i = 0; i < 100000; ++i) body.push_back(static_cast<char>((i * 7 + 3) % 251));
  EXPECT_EQ(j["body_1"], sha256_hex(body) + " 100000\n") << j.dump();
  // Refused before the body: the final status alone, no 100.
  j = h2("big", "/sha256", 2000000);
  EXPECT_EQ(j["statuses"], nlohmann::json::array({413})) << j.dump();
  j = h2("expect_bad", "/sha256", 10);
  EXPECT_EQ(j["statuses"], nlohmann::json::array({417})) << j.dump();
  j = h2("expect", "/nowhere", 10);
  EXPECT_EQ(j["statuses"], nlohmann::json::array({404})) << j.dump();
  // Without Expect, a request routed and within the limit gets no interim answer.
  j = h2("plain", "/sha256", 10);
  EXPECT_FALSE(j["answered_before_body"].get<bool>()) << j.dump();
}

// request_buffering = false: the worker is chosen when the head arrives and reads the body
// while the client still sends it. Turned on by a reload; chunked bodies reach it chunked;
// bad framing aborts the worker's request.
TEST_F(RequestBodyTest, StreamingSendsTheBodyAsItArrives) {
  config_.proxy("max_body_size", quote("64MiB"));
  AppSpec& web = config_.app("web");
  web.workers(1).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string data = random_bytes(2u << 20, 21);
  const std::string hash = sha256_hex(data);

  // Sends the head and the first 256 KiB, then tells whether the worker saw body bytes
  // before the rest was sent; finishes the upload and checks the answer.
  // `wait`: how long to look for the worker's first bytes (short where none are expected,
  // long where they are: a loaded machine delays the worker's log line).
  auto first_bytes_seen_early = [&](const std::string& marker, bool chunked, std::chrono::milliseconds wait) {
    RawClient c;
    EXPECT_TRUE(c.connect_tcp(port()));
    std::string head = "POST /sha256?m=" + marker + " HTTP/1.1\r\nHost: x\r\n";
    head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: " + std::to_string(data.size()) + "\r\n\r\n";
    auto piece = [&](std::string_view p) {
      if (!chunked) return std::string(p);
      char len[32];
      std::snprintf(len, sizeof len, "%zx\r\n", p.size());
      return std::string(len) + std::string(p) + "\r\n";
    };
    const size_t first = 256 * 1024;
    EXPECT_TRUE(c.send(head + piece(std::string_view(data).substr(0, first))));
    bool seen = false;
    for (const auto end = std::chrono::steady_clock::now() + wait; !seen && std::chrono::steady_clock::now() < end;) {
      seen = !app_lines_with("first body bytes /sha256?m=" + marker).empty();
      if (!seen) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(c.send(piece(std::string_view(data).substr(first)) + (chunked ? "0\r\n\r\n" : "")));
    auto rs = c.read_responses(1, 20s);
    EXPECT_EQ(rs.size(), 1u) << marker;
    if (rs.size() == 1) {
      EXPECT_EQ(rs[0].status, 200) << marker;
      EXPECT_EQ(rs[0].body, hash + " " + std::to_string(data.size()) + "\n") << marker;
    }
    return seen;
  };

  // Buffered (the default): the worker sees nothing until the whole body is in.
  EXPECT_FALSE(first_bytes_seen_early("buffered", false, 1500ms)) << "a buffered body reached the worker early";

  web.set("request_buffering", "false");
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_NE(rl.out.find("request_buffering changed"), std::string::npos) << rl.out;

  EXPECT_TRUE(first_bytes_seen_early("streamed", false, 10s)) << "the worker did not get the body while it arrived";
  EXPECT_TRUE(first_bytes_seen_early("chunked", true, 10s)) << "a chunked body was not streamed";
  // The worker got it chunked, re-framed by the proxy (never the client's framing).
  EXPECT_FALSE(app_lines_with("POST /sha256?m=chunked").empty());

  // HTTP/2 (h2c) streaming, with and without a length.
  std::string file = rt_.write_file("d", data);
  for (std::string how : {"h2", "h2-nolen"}) {
    HttpResponse r = upload(file, url("/sha256?m=" + how), how);
    EXPECT_EQ(r.status, 200) << how << r.error;
    EXPECT_EQ(r.body, hash + " " + std::to_string(data.size()) + "\n") << how;
  }

  // Bad chunk framing after the worker got the start: the client gets 400, the worker sees
  // its request cut off, and its slot is free again (concurrency 1).
  {
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port()));
    ASSERT_TRUE(c.send("POST /sha256?m=bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"));
    bool seen = false;
    for (int i = 0; i < 40 && !seen; ++i) {
      seen = !app_lines_with("first body bytes /sha256?m=bad").empty();
      if (!seen) std::this_thread::sleep_for(50ms);
    }
    EXPECT_TRUE(seen);
    ASSERT_TRUE(c.send("zz\r\n"));
    std::string all = c.read_until_close(5s);
    auto rs = parse_responses(all);
    ASSERT_EQ(rs.size(), 1u) << all;
    EXPECT_EQ(rs[0].status, 400);
  }
  HttpResponse after = upload(file, url("/sha256?m=after"), "cl");
  EXPECT_EQ(after.status, 200) << "the worker's slot was not freed: " << after.error;
  EXPECT_EQ(deleted_fds(proxy_pid()), std::vector<std::string>{});
}

// request_buffering = false, and the worker answers while the client is still sending its
// body: the answer is the end of the request. The client half-closing, sending past
// max_body_size or sending bytes that are no valid chunk while the answer is still being
// written changes nothing: the whole answer arrives.
TEST_F(RequestBodyTest, StreamedUploadAnsweredEarlyDeliversTheWholeAnswer) {
  config_.proxy("max_body_size", quote("200KiB"));
  AppSpec& web = config_.app("web");
  web.workers(1).concurrency(2);
  web.set("request_buffering", "false");
  ASSERT_NO_FATAL_FAILURE(start());
  // More than the kernel buffers between proxy and client hold (loopback send buffers grow
  // to a few MiB), so part of the answer is still in the proxy when the client acts.
  const size_t answer = 8u << 20;
  const std::string first(100000, 'a');
  auto chunk = [](const std::string& data) {
    char len[32];
    std::snprintf(len, sizeof len, "%zx\r\n", data.size());
    return std::string(len) + data + "\r\n";
  };
  struct Case {
    std::string name;
    std::function<void(RawClient&)> after_answer;
  } cases[] = {
      {"halfclose", [](RawClient& c) { c.shutdown_write(); }},
      {"toolarge", [&](RawClient& c) { EXPECT_TRUE(c.send(chunk(std::string(120000, 'b')))); }},
      {"badchunk", [](RawClient& c) { EXPECT_TRUE(c.send("zz\r\n")); }},
  };
  for (auto& k : cases) {
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port(), /*rcvbuf=*/4096)) << k.name;
    std::string target = "/early?bytes=" + std::to_string(answer) + "&m=" + k.name;
    ASSERT_TRUE(c.send("POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                       chunk(first)));
    // Read slowly until the proxy has the whole answer (its access log line is written
    // then): the rest of it waits in the proxy.
    // Slowly: 16 KiB every 10 ms at most (unpaced, a fast machine read 6.5 MB of the 8 MiB
    // before the proxy had the rest from the app, and the loop ran out).
    bool answered = false;
    for (int i = 0; i < 400 && !answered; ++i) {
      answered = !log_lines_with("\"POST " + target + " HTTP/1.1\" 200").empty();
      for (size_t until = c.received().size() + 16 * 1024; !answered && c.received().size() < until && !c.closed();)
        if (c.read_some(50ms).empty()) break;
      if (!answered) std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(answered) << k.name;
    k.after_answer(c);
    std::this_thread::sleep_for(200ms);  // the proxy sees it before the client reads on
    auto rs = c.read_responses(1, 20s);
    EXPECT_EQ(rs.size(), 1u) << k.name << ": the answer was cut off after " << c.received().size() << " bytes";
    if (rs.size() != 1) continue;
    EXPECT_EQ(rs[0].status, 200) << k.name;
    EXPECT_EQ(rs[0].body.size(), answer) << k.name;
  }
  // The worker's slots are free again.
  HttpResponse after = curl({"--data-binary", "abc", url("/sha256")}, 10s);
  EXPECT_EQ(after.status, 200) << after.error;
}

// request_buffering = false with a worker slower than the client: while the worker has not
// taken what the proxy holds, the proxy holds the client back (HTTP/1.1: it stops reading;
// HTTP/2: flow control), and that wait is no pause of the client's: no 408.
TEST_F(RequestBodyTest, StreamedUploadWaitsForASlowWorkerWithoutTimingOut) {
  config_.proxy("max_body_size", quote("64MiB"));
  config_.proxy("client_body_timeout", quote("1s"));
  AppSpec& web = config_.app("web");
  web.workers(1).concurrency(2);
  web.set("request_buffering", "false");
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string data = random_bytes(2u << 20, 31);
  const std::string file = rt_.write_file("slow", data);
  for (std::string how : {"cl", "chunked", "h2", "h2-nolen"}) {
    // The worker waits 2.5 s before it reads any of the body: the proxy's memory and the
    // socket between them fill long before.
    HttpResponse r = upload(file, url("/sha256?body_delay_ms=2500&m=" + how), how);
    EXPECT_EQ(r.status, 200) << how << ": " << r.error;
    EXPECT_EQ(r.body, sha256_hex(data) + " " + std::to_string(data.size()) + "\n") << how;
  }
}

// Four apps of four kinds; a reload turns request_buffering off for the second (fastcgi)
// only. Its bodies now stream: its worker is held from the head on, while the client still
// sends, and the proxy counts the body as streamed; the http, cgi and wsgi apps still get
// theirs only once whole (the http worker sees no body byte early). Every app still gets
// every upload byte-exact, and no worker was replaced.
TEST_F(RequestBodyTest, StreamingTurnedOnForTheSecondOfFourAppsByReload) {
  add_all_kinds();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_GT(admin_port(), 0);
  struct Kind {
    std::string app, path, host;
    bool hashes;  // answers "HEX BYTES" (else echoes the body)
  };
  const std::vector<Kind> kinds = {{"web", "/sha256", "", true},
                                   {"fcgi", "/", "fcgi.test", false},
                                   {"cgi", "/cgi-bin/echo.pl", "", false},
                                   {"py", "/sha256", "py.test", true}};
  const std::string data = random_bytes(512u << 10, 31);
  const std::string hash = sha256_hex(data);
  auto answered_right = [&](const Kind& k, const std::string& body, size_t n, const std::string& h) {
    return k.hashes ? body == h + " " + std::to_string(n) + "\n" : body.size() == n && sha256_hex(body) == h;
  };
  // Sends the head and the first 256 KiB (Content-Length), then tells whether the app's
  // worker took the request before the rest was sent (and, for the http app, saw body
  // bytes); finishes the upload, checks the answer and that the proxy counted the body as
  // streamed exactly when the worker took it early.
  int marker = 0;
  auto streams = [&](const Kind& k) {
    const std::string target = k.path + "?m=" + std::to_string(++marker);
    SCOPED_TRACE(k.app + " " + target);
    const double streamed_before = metric("corral_request_bodies_streamed_total");
    RawClient c;
    EXPECT_TRUE(c.connect_tcp(port()));
    const size_t first = 256 * 1024;
    EXPECT_TRUE(c.send("POST " + target + " HTTP/1.1\r\nHost: " + (k.host.empty() ? "x" : k.host) +
                       "\r\nContent-Length: " + std::to_string(data.size()) + "\r\n\r\n" + data.substr(0, first)));
    bool held = false, bytes_seen = false;
    // 1.5 s by the clock (each look asks the supervisor, which takes a while on a busy machine).
    for (const auto end = std::chrono::steady_clock::now() + 1500ms; !held && std::chrono::steady_clock::now() < end;) {
      held = in_flight(k.app) > 0;
      if (!held) std::this_thread::sleep_for(50ms);
    }
    if (k.app == "web") {
      for (int i = 0; i < 10 && !bytes_seen; ++i) {
        bytes_seen = !app_lines_with("first body bytes " + target).empty();
        if (!bytes_seen) std::this_thread::sleep_for(50ms);
      }
      EXPECT_EQ(bytes_seen, held) << "the worker's view differs from the proxy's";
    }
    EXPECT_TRUE(c.send(data.substr(first)));
    auto rs = c.read_responses(1, 20s);
    EXPECT_EQ(rs.size(), 1u);
    if (rs.size() == 1) {
      EXPECT_EQ(rs[0].status, 200);
      EXPECT_TRUE(answered_right(k, rs[0].body, data.size(), hash)) << rs[0].body.substr(0, 200);
    }
    EXPECT_EQ(metric("corral_request_bodies_streamed_total") - streamed_before, held ? 1 : 0);
    return held;
  };
  // The supervisor's view of every app's workers.
  auto pids = [&] {
    nlohmann::json st = corral_->status();
    std::map<std::string, std::vector<pid_t>> out;
    for (const auto& k : kinds) out[k.app] = CorralProcess::worker_pids(st, k.app);
    return out;
  };

  for (const auto& k : kinds) EXPECT_FALSE(streams(k)) << k.app << ": a buffered body reached the worker early";
  const auto before = pids();
  for (const auto& k : kinds) ASSERT_FALSE(before.at(k.app).empty()) << k.app;
  const pid_t proxy = proxy_pid();

  config_.app("fcgi").set("request_buffering", "false");
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_NE(rl.out.find("request_buffering changed"), std::string::npos) << rl.out;
  for (const char* other : {"app web:", "app cgi:", "app py:", "route"})
    EXPECT_EQ((rl.out + rl.err).find(other), std::string::npos) << other << " in:\n" << rl.out << rl.err;

  for (const auto& k : kinds) {
    if (k.app == "fcgi") {
      EXPECT_TRUE(streams(k)) << "the fastcgi app's body was not streamed after the reload";
    } else {
      EXPECT_FALSE(streams(k)) << k.app << ": a body streamed to an app that still buffers";
    }
  }
  // Byte-exact at the changed app however the client frames it (a fastcgi app gets a body of
  // unknown length buffered: it needs CONTENT_LENGTH up front); the other apps, whose
  // settings did not change, get one upload of each size each (UploadsArriveByteExactAtEveryAppKind
  // covers every framing at every kind).
  const std::vector<size_t> sizes = {65537, 3u << 20};
  std::map<size_t, std::string> files, hashes;
  for (size_t n : sizes) {
    std::string d = random_bytes(n, static_cast<uint32_t>(n + 5));
    files[n] = rt_.write_file("after-" + std::to_string(n), d);
    hashes[n] = sha256_hex(d);
  }
  for (const auto& k : kinds) {
    const double streamed_before = metric("corral_request_bodies_streamed_total");
    const std::vector<std::string> hows = k.app == "fcgi" ? std::vector<std::string>{"cl", "chunked", "h2", "h2-nolen"}
                                                          : std::vector<std::string>{"cl"};
    for (size_t n : sizes) {
      for (const std::string& how : hows) {
        std::vector<std::string> extra;
        if (!k.host.empty()) extra = {"-H", "Host: " + k.host};
        HttpResponse r = upload(files[n], url(k.path), how, extra);
        const std::string what = k.app + " " + std::to_string(n) + " bytes " + how;
        ASSERT_EQ(r.status, 200) << what << ": " << r.error << r.body.substr(0, 200);
        EXPECT_TRUE(answered_right(k, r.body, n, hashes[n])) << what << ": " << r.body.substr(0, 200);
      }
    }
    const double streamed = metric("corral_request_bodies_streamed_total") - streamed_before;
    if (k.app == "fcgi") {
      EXPECT_EQ(streamed, 2 * 2) << "the uploads with a length (h1 and h2, two sizes) stream";
    } else {
      EXPECT_EQ(streamed, 0) << k.app;
    }
  }
  EXPECT_EQ(pids(), before) << "a worker was replaced";
  EXPECT_EQ(proxy_pid(), proxy) << "the proxy was restarted";
  EXPECT_EQ(deleted_fds(proxy), std::vector<std::string>{});
}

}  // namespace
}  // namespace corral::itest
