// TLS listeners end to end: curl over HTTP/2 and HTTP/1.1, ALPN and SNI selection seen by
// `openssl s_client`, TLS version floors (intermediate, modern), session resumption,
// HSTS, redirect_https (308), and a bad key refused by --check naming the file.
// Certificates are generated at test time with the openssl CLI.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

class TlsTest : public IntegrationTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(make_cert("a", "a.test"));
    ASSERT_NO_FATAL_FAILURE(make_cert("b", "b.test"));
  }
  /// Listener 0 is plaintext (the harness default); listener 1 is TLS with certs a and b (SNI)
  /// and `extra` keys.
  void add_sni_listener(const std::string& extra = "") {
    config_.raw("\n[[listener]]\naddress = \"127.0.0.1:0\"\n"
                "tls = { certs = [{ cert = \"a.pem\", key = \"a.key\" }, { cert = \"b.pem\", key = \"b.key\" }]" +
                extra + " }\nhsts = \"max-age=600\"\n");
  }
  std::string https(const std::string& path) { return "https://localhost:" + std::to_string(tls_port_) + path; }
  std::string s_client(const std::vector<std::string>& extra, const std::string& stdin_data = "") {
    std::vector<std::string> argv = {"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(tls_port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ProcessResult r = run_process(argv, 10s, stdin_data);
    return r.out + r.err;
  }
  void start_tls() {
    ASSERT_NO_FATAL_FAILURE(start());
    tls_port_ = corral_->port(1);
    ASSERT_GT(tls_port_, 0);
  }
  int tls_port_ = 0;
};

TEST_F(TlsTest, CurlSpeaksHttp2AndHttp11OverTls) {
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  HttpResponse h2 = curl({"-k", "--http2", https("/echo")});
  ASSERT_EQ(h2.status, 200) << h2.error;
  nlohmann::json echo = parse_echo(h2.body);
  ASSERT_TRUE(echo.is_object()) << h2.body;
  EXPECT_EQ(echo_headers(echo, "x-forwarded-proto"), std::vector<std::string>{"https"});
  EXPECT_EQ(h2.header("strict-transport-security"), "max-age=600");
  auto lines = log_lines_with("\"GET /echo HTTP/2.0\" 200");
  EXPECT_EQ(lines.size(), 1u) << "access log shows the HTTP/2 request";

  HttpResponse h1 = curl({"-k", "--http1.1", https("/echo")});
  ASSERT_EQ(h1.status, 200) << h1.error;
  EXPECT_EQ(h1.header("Strict-Transport-Security"), "max-age=600");
  EXPECT_EQ(log_lines_with("\"GET /echo HTTP/1.1\" 200").size(), 1u);
}

TEST_F(TlsTest, AlpnAndSniPickProtocolAndCertificate) {
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  std::string out = s_client({"-alpn", "h2", "-servername", "b.test"});
  EXPECT_NE(out.find("ALPN protocol: h2"), std::string::npos) << out;
  EXPECT_NE(out.find("CN = b.test"), std::string::npos) << out;
  out = s_client({"-alpn", "http/1.1", "-servername", "a.test"});
  EXPECT_NE(out.find("ALPN protocol: http/1.1"), std::string::npos) << out;
  EXPECT_NE(out.find("CN = a.test"), std::string::npos) << out;
  // Unknown name: the first certificate is the default.
  out = s_client({"-alpn", "h2", "-servername", "unknown.test"});
  EXPECT_NE(out.find("CN = a.test"), std::string::npos) << out;
  // No common protocol: the handshake succeeds without ALPN (HTTP/1.1).
  out = s_client({"-alpn", "spdy/3"});
  EXPECT_NE(out.find("No ALPN negotiated"), std::string::npos) << out;
}

TEST_F(TlsTest, OldTlsVersionsAreRefusedAndModernRefusesTls12) {
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  std::string out = s_client({"-tls1_1"});
  EXPECT_NE(out.find("Cipher is (NONE)"), std::string::npos) << out;
  EXPECT_NE(out.find("alert protocol version"), std::string::npos) << out;
  out = s_client({"-tls1_2"});
  EXPECT_NE(out.find("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES"), std::string::npos) << out;
  out = s_client({"-tls1_3"});
  EXPECT_NE(out.find("New, TLSv1.3, Cipher is TLS_"), std::string::npos) << out;
}

// The admin listener's /metrics counts TLS handshakes and why the others failed, and the open
// connections by protocol.
TEST_F(TlsTest, MetricsCountHandshakesAndFailuresByReason) {
  config_.proxy("admin", quote("127.0.0.1:0"));
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  std::string bound = corral_->status()["admin"].value("bound", "");
  const int admin = std::atoi(bound.substr(bound.rfind(':') + 1).c_str());
  ASSERT_GT(admin, 0);
  ASSERT_EQ(curl({"-k", "--http2", https("/")}).status, 200);
  ASSERT_EQ(curl({"-k", "--http1.1", https("/")}).status, 200);
  s_client({"-tls1_1"});  // refused: version
  {
    RawClient c;  // plaintext HTTP on the TLS port: a protocol error
    ASSERT_TRUE(c.connect_tcp(tls_port_));
    c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_until_close(5s);
  }
  {
    RawClient c;  // connects and leaves before any handshake byte
    ASSERT_TRUE(c.connect_tcp(tls_port_));
  }
  // Both listeners are written "127.0.0.1:0": the second is labelled with its index.
  std::string body;
  auto value = [&](const std::string& series) {
    size_t at = body.find(series + " ");
    return at == std::string::npos ? -1.0 : std::strtod(body.c_str() + at + series.size() + 1, nullptr);
  };
  bool done = false;
  for (int i = 0; i < 50 && !done; ++i) {
    body = http_get(admin, "/metrics").body;
    done = value(R"(corral_tls_handshake_failures_total{listener="127.0.0.1:0#1",reason="closed_by_client"})") >= 1;
    if (!done) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(body.find(R"(corral_tls_handshakes_total{listener="127.0.0.1:0"})"), std::string::npos)
      << "the plaintext listener has no TLS series";
  EXPECT_EQ(value(R"(corral_tls_handshakes_total{listener="127.0.0.1:0#1"})"), 2) << body;
  EXPECT_EQ(value(R"(corral_tls_handshake_failures_total{listener="127.0.0.1:0#1",reason="unsupported_version"})"), 1)
      << body;
  EXPECT_EQ(value(R"(corral_tls_handshake_failures_total{listener="127.0.0.1:0#1",reason="protocol_error"})"), 1) << body;
  EXPECT_GE(value(R"(corral_tls_handshake_failures_total{listener="127.0.0.1:0#1",reason="closed_by_client"})"), 1)
      << body;
}

TEST_F(TlsTest, ModernProfileIsTls13Only) {
  add_sni_listener(", profile = \"modern\"");
  ASSERT_NO_FATAL_FAILURE(start_tls());
  std::string out = s_client({"-tls1_2"});
  EXPECT_NE(out.find("Cipher is (NONE)"), std::string::npos) << out;
  out = s_client({"-tls1_3"});
  EXPECT_NE(out.find("New, TLSv1.3, Cipher is TLS_"), std::string::npos) << out;
}

TEST_F(TlsTest, SessionsResumeWithTickets) {
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  std::string sess = rt_.path() + "/sess.pem";
  for (const char* v : {"-tls1_2", "-tls1_3"}) {
    // -ign_eof and Connection: close: s_client reads until the server closes, so the
    // TLS 1.3 ticket (sent after the handshake) is always read before it exits.
    const std::string req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    std::string out = s_client({v, "-ign_eof", "-sess_out", sess}, req);
    ASSERT_NE(out.find("New,"), std::string::npos) << out;
    out = s_client({v, "-ign_eof", "-sess_in", sess}, req);
    EXPECT_NE(out.find("Reused,"), std::string::npos) << v << ": " << out;
  }
}

// OpenSSL reads ahead (whole flights, not a record at a time): requests whose TLS records
// came in one read are all answered, right after the handshake and on a parked keep-alive
// connection, though the socket never becomes readable again for the later ones.
TEST_F(TlsTest, PipelinedRequestsInSeparateRecordsAreAllAnswered) {
  add_sni_listener();
  ASSERT_NO_FATAL_FAILURE(start_tls());
  const std::string script = R"PY(
import socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="a.test")
s.settimeout(5)
req = lambda n, last=False: ("GET /echo?n=%d HTTP/1.1\r\nHost: a\r\n%s\r\n" % (n, "Connection: close\r\n" if last else "")).encode()
def answers(want):  # reads `want` whole responses (Content-Length bodies)
    global buf
    got = 0
    while got < want:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            length = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length:")][0])
            if len(buf) >= end + 4 + length:
                got += head.startswith("HTTP/1.1 200")
                buf = buf[end + 4 + length:]
                continue
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return got
buf = b""
s.sendall(req(1)); s.sendall(req(2))          # two records, at once after the handshake
print("first", answers(2), flush=True)
time.sleep(0.3)                                # parked
s.sendall(req(3)); s.sendall(req(4)); s.sendall(req(5, True))
print("parked", answers(3), flush=True)
)PY";
  ProcessResult r = run_process({"/usr/bin/python3", "-c", script, std::to_string(tls_port_)}, 20s);
  EXPECT_NE(r.out.find("first 2"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("parked 3"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(log_lines_with("\"GET /echo?n=").size(), 5u);
}

TEST_F(TlsTest, RedirectHttpsAnswers308ToTheTlsPort) {
  config_.raw("\n[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"a.pem\", key = \"a.key\" }\n"
              "\n[[listener]]\naddress = \"127.0.0.1:0\"\nredirect_https = true\n");
  ASSERT_NO_FATAL_FAILURE(start_tls());
  int plain = corral_->port(2);
  HttpResponse r = curl({"http://localhost:" + std::to_string(plain) + "/a/b?c=d"});
  EXPECT_EQ(r.status, 308) << r.error;
  EXPECT_EQ(r.header("Location"), "https://localhost:" + std::to_string(tls_port_) + "/a/b?c=d");
  EXPECT_TRUE(app_lines_with("/a/b").empty()) << "the redirect never reaches the app";
  // The Location serves the app over TLS.
  r = curl({"http://localhost:" + std::to_string(plain) + "/echo"});
  ASSERT_EQ(r.status, 308);
  r = curl({"-k", r.header("Location")});
  EXPECT_EQ(r.status, 200) << r.error;
}

TEST_F(TlsTest, ReloadPicksUpRenewedCertificatesWithoutDroppingConnections) {
  add_sni_listener();
  config_.app("demo").concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start_tls());
  EXPECT_NE(s_client({"-servername", "a.test"}).find("CN = a.test"), std::string::npos);
  // A request in flight on an HTTP/2 connection across the reload.
  HttpResponse slow;
  std::thread t([&] { slow = curl({"-k", "--http2", https("/sleep?ms=1500")}); });
  std::this_thread::sleep_for(300ms);
  ASSERT_NO_FATAL_FAILURE(make_cert("a", "renewed.test"));
  ProcessResult r = ctl({"reload"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string out = s_client({"-servername", "a.test"});
  EXPECT_NE(out.find("CN = renewed.test"), std::string::npos) << "new connections get the renewed certificate: " << out;
  t.join();
  EXPECT_EQ(slow.status, 200) << "the open connection was not dropped: " << slow.error;
}

TEST_F(TlsTest, MismatchedKeyIsAConfigErrorNamingTheFile) {
  add_sni_listener();
  std::string cfg = config_.render();
  size_t p = cfg.find("key = \"a.key\"");
  ASSERT_NE(p, std::string::npos);
  cfg.replace(p, 13, "key = \"b.key\"");
  std::string file = rt_.write_file("bad.toml", cfg);
  ProcessResult r = run_process({bin_path("corral-supervisor"), "-c", file, "--check"}, 10s);
  EXPECT_NE(r.exit_code, 0);
  std::string all = r.out + r.err;
  EXPECT_NE(all.find("b.key' does not match the certificate '" + rt_.path() + "/a.pem'"), std::string::npos) << all;
  stopped_ = true;  // nothing was started
}

}  // namespace
}  // namespace corral::itest
