// Behind a load balancer: the PROXY protocol on [[listener]] (proxy_protocol,
// proxy_protocol_trusted) and [proxy] trusted_proxies, end to end. HAProxy (Debian's) in TCP
// mode in front of corral on loopback sends send-proxy-v2 and send-proxy (v1) over plaintext
// and TLS listeners; curl connects to HAProxy from 127.0.0.5, so the address HAProxy puts in
// the header differs from its own (127.0.0.1). An HTTP app, a CGI script, a WSGI app and a
// FastCGI responder in one config must each see 127.0.0.5 and curl's own source port, over HTTP/1.1, h2c (prior
// knowledge) and h2 over TLS (ALPN); the access log has it. Raw sockets: a peer outside the
// trusted ranges is reset unread and counted, garbage and a late header close the
// connection, a header split byte by byte works, v2 LOCAL keeps the balancer's address, IPv6
// (v1 TCP6), the per-client limit counts the header's client. A reload changes all three keys
// for new connections. trusted_proxies: X-Forwarded-For extended from a trusted peer (the
// client is the rightmost untrusted address, for every app kind), replaced from others.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <memory>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

extern char** environ;

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps";

std::string be16(size_t v) { return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)}; }

// A v2 PROXY header for TCP over IPv4 (PROXY command), or a LOCAL one.
std::string v2_tcp4(const char* src, uint16_t sport, const char* dst = "192.0.2.1", uint16_t dport = 443) {
  in_addr s{}, d{};
  inet_pton(AF_INET, src, &s);
  inet_pton(AF_INET, dst, &d);
  std::string payload = std::string(reinterpret_cast<const char*>(&s), 4) + std::string(reinterpret_cast<const char*>(&d), 4) +
                        be16(sport) + be16(dport);
  return std::string("\r\n\r\n\0\r\nQUIT\n", 12) + "\x21\x11" + be16(payload.size()) + payload;
}
std::string v2_local() { return std::string("\r\n\r\n\0\r\nQUIT\n", 12) + std::string("\x20\x00\x00\x00", 4); }

/// A client socket from a chosen source address to a local port.
class Conn : public RawClient {
 public:
  bool connect(int port, const std::string& src = "127.0.0.1", const std::string& dst = "127.0.0.1") {
    seen_ = 0;
    return connect_from(port, src, dst);
  }
  /// What arrives after the last call, until the peer closes or `timeout`; `closed` tells
  /// whether it closed.
  std::string read_all(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    const std::string& all = read_until_close(timeout);
    if (closed) *closed = this->closed();
    std::string got = all.substr(seen_);
    seen_ = all.size();
    return got;
  }
  /// Sends a GET with Connection: close and returns the one response (status 0: none).
  RawResponse get(const std::string& path) {
    send("GET " + path + " HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n");
    auto rs = parse_responses(read_all(5s));
    return rs.empty() ? RawResponse{} : rs[0];
  }

 private:
  size_t seen_ = 0;
};

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// HAProxy in the foreground (-db), killed by the destructor.
class Haproxy {
 public:
  ~Haproxy() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
  }
  /// Starts haproxy on `config` and waits until `port` accepts; false on failure.
  bool start(const std::string& config_path, const std::string& log_path, int port) {
    std::vector<std::string> args = {"/usr/sbin/haproxy", "-db", "-f", config_path};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    auto t0 = Clock::now();
    while (Clock::now() - t0 < 10s) {
      Conn c;
      if (c.connect(port)) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
};

/// One curl run through `url` from `src`: the body and the source port curl used.
struct CurlResult {
  std::string body;
  int local_port = 0;
  std::string http_version;
  std::string error;
};
CurlResult curl_from(const std::string& src, const std::string& url, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10", "--interface", src, "-k", "-o", "-",
                                   "-w", "\n@@%{local_port} %{http_version} %{http_code}"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  ProcessResult r = run_process(argv, 15s);
  CurlResult out;
  size_t at = r.out.rfind("\n@@");
  if (r.exit_code != 0 || at == std::string::npos) {
    out.error = "curl exit " + std::to_string(r.exit_code) + ": " + r.err;
    return out;
  }
  out.body = r.out.substr(0, at);
  std::istringstream tail(r.out.substr(at + 3));
  std::string code;
  tail >> out.local_port >> out.http_version >> code;
  if (code != "200") out.error = "status " + code + ": " + out.body;
  return out;
}

/// NAME=value lines (the CGI env.sh output).
std::map<std::string, std::string> env_lines(const std::string& body) {
  std::map<std::string, std::string> m;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return m;
}

class ProxyProtocolTest : public IntegrationTest {
 protected:
  void SetUp() override { base_config(); }

  /// Apps: the HTTP testapp at /, CGI scripts at /cgi-bin, a WSGI app at /wsgi. Listener 0 is
  /// the harness's plaintext one (no PROXY protocol).
  void base_config() {
    config_ = ConfigBuilder(rt_.path());
    config_.proxy("admin", quote("127.0.0.1:0")).proxy("threads", "2").proxy("client_header_timeout", quote("2s"));
    AppSpec& cgi = config_.app("cgi");
    cgi.kind = "cgi";
    cgi.command.clear();
    cgi.set("root", quote(kApps + "/cgi")).workers(1).concurrency(4);
    AppSpec& w = config_.app("wsgi");
    w.kind = "wsgi";
    w.command.clear();
    w.env.erase("TESTAPP_LOG");
    w.env["SCRIPT_NAME"] = "/wsgi";
    w.set("module", quote("pep3333_app"));
    w.set("python_path", "[" + quote(kApps + "/wsgi_pep3333") + "]");
    w.set("worker_class", quote("gthread"));
    w.workers(1).concurrency(4);
    AppSpec& f = config_.app("fcgi");
    f.kind = "fastcgi";
    f.command = {bin_path("corral-fcgi-hello")};
    f.workers(1);
    config_.app("demo");
    config_.route("cgi", "/cgi-bin").route("wsgi", "/wsgi").route("fcgi", "/fcgi").route("demo", "/");
  }
  void add_listener(const std::string& keys, const std::string& address = "127.0.0.1:0") {
    config_.raw("\n[[listener]]\naddress = " + quote(address) + "\n" + keys);
  }
  void start_all() {
    ASSERT_NO_FATAL_FAILURE(start());
    admin_ = admin_port();
    ASSERT_GT(admin_, 0);
  }
  std::string metrics() { return http_get(admin_, "/metrics").body; }
  double refused(const std::string& label, const std::string& reason) {
    return metric_sum(metrics(), "corral_connections_refused_total{listener=\"" + label + "\",reason=\"" + reason + "\"}");
  }
  bool wait_refused(const std::string& label, const std::string& reason, double n) {
    auto t0 = Clock::now();
    while (Clock::now() - t0 < 5s) {
      if (refused(label, reason) >= n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  void reload() {
    const double before = metric_sum(metrics(), "corral_config_generation ");
    ProcessResult r = reload_config();
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto t0 = Clock::now();
    while (metric_sum(metrics(), "corral_config_generation ") <= before && Clock::now() - t0 < 5s)
      std::this_thread::sleep_for(10ms);
    ASSERT_GT(metric_sum(metrics(), "corral_config_generation "), before);
  }
  /// What each app saw as the client (address, port) for one request through `url_base`.
  void expect_client_everywhere(const std::string& url_base, const std::vector<std::string>& extra,
                                const std::string& want_version, const std::string& what) {
    SCOPED_TRACE(what);
    CurlResult http = curl_from("127.0.0.5", url_base + "/echo", extra);
    ASSERT_EQ(http.error, "");
    EXPECT_EQ(http.http_version, want_version);
    nlohmann::json e = parse_echo(http.body);
    ASSERT_EQ(echo_headers(e, "X-Forwarded-For").size(), 1u) << http.body;
    EXPECT_EQ(echo_headers(e, "X-Forwarded-For")[0], "127.0.0.5");
    ASSERT_EQ(echo_headers(e, "X-Remote-Port").size(), 1u) << http.body;
    EXPECT_EQ(echo_headers(e, "X-Remote-Port")[0], std::to_string(http.local_port));
    EXPECT_TRUE(echo_headers(e, "X-Real-IP").empty()) << "no chain, no X-Real-IP: " << http.body;

    CurlResult cgi = curl_from("127.0.0.5", url_base + "/cgi-bin/env.sh", extra);
    ASSERT_EQ(cgi.error, "");
    auto env = env_lines(cgi.body);
    EXPECT_EQ(env["REMOTE_ADDR"], "127.0.0.5") << cgi.body;
    EXPECT_EQ(env["REMOTE_PORT"], std::to_string(cgi.local_port)) << cgi.body;

    CurlResult wsgi = curl_from("127.0.0.5", url_base + "/wsgi/environ", extra);
    ASSERT_EQ(wsgi.error, "");
    auto j = nlohmann::json::parse(wsgi.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << wsgi.body;
    EXPECT_EQ(j.value("REMOTE_ADDR", ""), "127.0.0.5") << wsgi.body;
    EXPECT_EQ(j.value("REMOTE_PORT", ""), std::to_string(wsgi.local_port)) << wsgi.body;

    CurlResult fcgi = curl_from("127.0.0.5", url_base + "/fcgi/x?env", extra);
    ASSERT_EQ(fcgi.error, "");
    auto fenv = env_lines(fcgi.body);
    EXPECT_EQ(fenv["REMOTE_ADDR"], "127.0.0.5") << fcgi.body;
    EXPECT_EQ(fenv["REMOTE_PORT"], std::to_string(fcgi.local_port)) << fcgi.body;
  }
  int admin_ = 0;
};

TEST_F(ProxyProtocolTest, HaproxySendProxyV2AndV1OverPlaintextAndTls) {
  ASSERT_NO_FATAL_FAILURE(make_cert());
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"127.0.0.1/32\"]\n");
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"127.0.0.1/32\"]\n"
               "tls = { cert = \"t.pem\", key = \"t.key\" }\n");
  ASSERT_NO_FATAL_FAILURE(start_all());
  const int plain = corral_->port(1), tls = corral_->port(2);
  ASSERT_GT(plain, 0);
  ASSERT_GT(tls, 0);
  const int v2 = free_port(), v1 = free_port(), v2tls = free_port();
  const std::string cfg = rt_.path() + "/haproxy.cfg";
  std::ofstream(cfg) << "global\n  maxconn 200\n"
                        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
                     << "frontend v2\n  bind 127.0.0.1:" << v2 << "\n  default_backend v2\n"
                     << "backend v2\n  server corral 127.0.0.1:" << plain << " send-proxy-v2\n"
                     << "frontend v1\n  bind 127.0.0.1:" << v1 << "\n  default_backend v1\n"
                     << "backend v1\n  server corral 127.0.0.1:" << plain << " send-proxy\n"
                     << "frontend v2tls\n  bind 127.0.0.1:" << v2tls << "\n  default_backend v2tls\n"
                     << "backend v2tls\n  server corral 127.0.0.1:" << tls << " send-proxy-v2\n";
  Haproxy haproxy;
  ASSERT_TRUE(haproxy.start(cfg, rt_.path() + "/haproxy.log", v2tls)) << "haproxy did not start";

  const std::string p2 = "http://127.0.0.1:" + std::to_string(v2);
  const std::string p1 = "http://127.0.0.1:" + std::to_string(v1);
  const std::string t2 = "https://127.0.0.1:" + std::to_string(v2tls);
  expect_client_everywhere(p2, {"--http1.1"}, "1.1", "v2, HTTP/1.1");
  expect_client_everywhere(p1, {"--http1.1"}, "1.1", "v1, HTTP/1.1");
  expect_client_everywhere(p2, {"--http2-prior-knowledge"}, "2", "v2, h2c prior knowledge");
  expect_client_everywhere(p1, {"--http2-prior-knowledge"}, "2", "v1, h2c prior knowledge");
  expect_client_everywhere(t2, {"--http1.1"}, "1.1", "v2, TLS HTTP/1.1");
  expect_client_everywhere(t2, {"--http2"}, "2", "v2, TLS h2 by ALPN");

  // The access log has the client HAProxy saw for every request (6 runs x 4 apps).
  auto t0 = Clock::now();
  while (log_lines_with("127.0.0.5 - - [").size() < 24 && Clock::now() - t0 < 5s) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(log_lines_with("127.0.0.5 - - [").size(), 24u) << corral_->log();
  EXPECT_EQ(refused("127.0.0.1:0#1", "proxy_protocol_invalid"), 0) << metrics();
  EXPECT_EQ(refused("127.0.0.1:0#2", "proxy_protocol_invalid"), 0) << metrics();
}

TEST_F(ProxyProtocolTest, RawPeersHeadersAndLimits) {
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"127.0.0.1/32\"]\nmax_connections_per_client = 1\n");
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"::1/128\"]\n", "[::1]:0");
  ASSERT_NO_FATAL_FAILURE(start_all());
  const int pp = corral_->port(1), pp6 = corral_->port(2);
  const std::string label = "127.0.0.1:0#1";

  {  // A peer outside proxy_protocol_trusted: reset before any read, counted, logged.
    Conn c;
    ASSERT_TRUE(c.connect(pp, "127.0.0.9"));
    c.send(v2_tcp4("192.0.2.44", 4711) + "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    bool closed = false;
    EXPECT_EQ(c.read_all(3s, &closed), "");
    EXPECT_TRUE(closed);
    EXPECT_TRUE(wait_refused(label, "proxy_protocol_untrusted", 1)) << metrics();
    EXPECT_FALSE(log_lines_with("reset a connection from 127.0.0.9, which is not in proxy_protocol_trusted").empty())
        << corral_->log();
  }
  {  // Garbage instead of a header: closed, counted, logged.
    Conn c;
    ASSERT_TRUE(c.connect(pp));
    c.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n");
    bool closed = false;
    EXPECT_EQ(c.read_all(3s, &closed), "");
    EXPECT_TRUE(closed);
    EXPECT_TRUE(wait_refused(label, "proxy_protocol_invalid", 1)) << metrics();
    EXPECT_FALSE(log_lines_with("not a PROXY protocol header").empty()) << corral_->log();
  }
  {  // No header in time (client_header_timeout 2s): closed and counted.
    Conn c;
    ASSERT_TRUE(c.connect(pp));
    c.send("PROXY TCP4 192.0.2.1");
    bool closed = false;
    auto t0 = Clock::now();
    EXPECT_EQ(c.read_all(5s, &closed), "");
    EXPECT_TRUE(closed);
    EXPECT_LT(Clock::now() - t0, 4s);
    EXPECT_TRUE(wait_refused(label, "proxy_protocol_invalid", 2)) << metrics();
  }
  {  // A v2 header split byte by byte, then the request: the header's client everywhere.
    Conn c;
    ASSERT_TRUE(c.connect(pp));
    std::string h = v2_tcp4("192.0.2.44", 4711);
    for (char b : h) {
      ASSERT_TRUE(c.send(std::string(1, b)));
      std::this_thread::sleep_for(2ms);
    }
    RawResponse r = c.get("/echo");
    ASSERT_EQ(r.status, 200);
    nlohmann::json e = parse_echo(r.body);
    EXPECT_EQ(echo_headers(e, "X-Forwarded-For"), std::vector<std::string>{"192.0.2.44"}) << r.body;
    EXPECT_EQ(echo_headers(e, "X-Remote-Port"), std::vector<std::string>{"4711"}) << r.body;
    EXPECT_EQ(echo_headers(e, "X-Forwarded-Port"), std::vector<std::string>{"443"}) << "the balancer's port";
    EXPECT_FALSE(log_lines_with("192.0.2.44 - - [").empty()) << corral_->log();
  }
  {  // v1 split in two writes, to the CGI app.
    Conn c;
    ASSERT_TRUE(c.connect(pp));
    ASSERT_TRUE(c.send("PROXY TCP4 198.51.100.7 192.0.2.1 5"));
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(c.send("555 80\r\n"));
    RawResponse r = c.get("/cgi-bin/env.sh");
    ASSERT_EQ(r.status, 200);
    auto env = env_lines(r.body);
    EXPECT_EQ(env["REMOTE_ADDR"], "198.51.100.7") << r.body;
    EXPECT_EQ(env["REMOTE_PORT"], "5555") << r.body;
  }
  {  // v2 LOCAL (a balancer's health check): the balancer's own address stays.
    Conn c;
    ASSERT_TRUE(c.connect(pp));
    ASSERT_TRUE(c.send(v2_local()));
    RawResponse r = c.get("/echo");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(echo_headers(parse_echo(r.body), "X-Forwarded-For"), std::vector<std::string>{"127.0.0.1"}) << r.body;
  }
  {  // IPv6: v1 TCP6 on a [::1] listener, to the WSGI app.
    Conn c;
    ASSERT_TRUE(c.connect(pp6, "::1", "::1"));
    ASSERT_TRUE(c.send("PROXY TCP6 2001:db8::7 2001:db8::1 40001 443\r\n"));
    RawResponse r = c.get("/wsgi/environ");
    ASSERT_EQ(r.status, 200);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_EQ(j.value("REMOTE_ADDR", ""), "2001:db8::7") << r.body;
    EXPECT_EQ(j.value("REMOTE_PORT", ""), "40001") << r.body;
  }
  {  // max_connections_per_client = 1 counts the header's client, not the balancer.
    Conn a, b, other;
    ASSERT_TRUE(a.connect(pp));
    ASSERT_TRUE(a.send(v2_tcp4("203.0.113.1", 1000)));
    ASSERT_TRUE(b.connect(pp));
    ASSERT_TRUE(b.send(v2_tcp4("203.0.113.2", 1000)));
    // Both held open: different clients through one balancer address.
    ASSERT_TRUE(a.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
    EXPECT_NE(a.read_all(1s).find("200 OK"), std::string::npos);
    ASSERT_TRUE(b.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
    EXPECT_NE(b.read_all(1s).find("200 OK"), std::string::npos);
    ASSERT_TRUE(other.connect(pp));
    ASSERT_TRUE(other.send(v2_tcp4("203.0.113.1", 1001) + "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
    bool closed = false;
    EXPECT_EQ(other.read_all(3s, &closed), "");
    EXPECT_TRUE(closed) << "a second connection of 203.0.113.1 was not refused";
    EXPECT_TRUE(wait_refused(label, "max_connections_per_client", 1)) << metrics();
  }
}

TEST_F(ProxyProtocolTest, ReloadChangesTheKeysForNewConnections) {
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"127.0.0.1/32\"]\n");
  ASSERT_NO_FATAL_FAILURE(start_all());
  const int pp = corral_->port(1);
  Conn held;
  ASSERT_TRUE(held.connect(pp));
  ASSERT_TRUE(held.send(v2_tcp4("192.0.2.50", 1234)));
  ASSERT_TRUE(held.send("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_NE(held.read_all(1s).find("200 OK"), std::string::npos);

  // Trust moves to 127.0.0.9; trusted_proxies gets 192.0.2.0/24.
  base_config();
  config_.proxy("trusted_proxies", "[\"192.0.2.0/24\"]");
  add_listener("proxy_protocol = true\nproxy_protocol_trusted = [\"127.0.0.9/32\"]\n");
  ASSERT_NO_FATAL_FAILURE(reload());
  {
    Conn c;
    ASSERT_TRUE(c.connect(pp, "127.0.0.1"));
    c.send(v2_tcp4("192.0.2.51", 1234));
    bool closed = false;
    EXPECT_EQ(c.read_all(3s, &closed), "");
    EXPECT_TRUE(closed) << "127.0.0.1 is no longer trusted";
  }
  {
    Conn c;
    ASSERT_TRUE(c.connect(pp, "127.0.0.9"));
    ASSERT_TRUE(c.send(v2_tcp4("192.0.2.51", 1234)));
    c.send("GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 203.0.113.77\r\n\r\n");
    auto rs = parse_responses(c.read_all(5s));
    ASSERT_EQ(rs.size(), 1u);
    nlohmann::json e = parse_echo(rs[0].body);
    // The header's client is in trusted_proxies now: its X-Forwarded-For is extended.
    EXPECT_EQ(echo_headers(e, "X-Forwarded-For"), std::vector<std::string>{"203.0.113.77, 192.0.2.51"}) << rs[0].body;
    EXPECT_EQ(echo_headers(e, "X-Real-IP"), std::vector<std::string>{"203.0.113.77"}) << rs[0].body;
  }
  // The connection accepted before the reload keeps its header's client.
  ASSERT_TRUE(held.send("GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  auto rs = parse_responses(held.read_all(5s));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(echo_headers(parse_echo(rs[0].body), "X-Forwarded-For"), std::vector<std::string>{"192.0.2.50"});

  // proxy_protocol off: the listener takes plain HTTP again.
  base_config();
  add_listener("");
  ASSERT_NO_FATAL_FAILURE(reload());
  Conn plain;
  ASSERT_TRUE(plain.connect(pp, "127.0.0.9"));
  RawResponse r = plain.get("/echo");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(echo_headers(parse_echo(r.body), "X-Forwarded-For"), std::vector<std::string>{"127.0.0.9"});
}

TEST_F(ProxyProtocolTest, TrustedProxiesExtendTheChainForEveryAppKind) {
  config_.proxy("trusted_proxies", "[\"127.0.0.1/32\", \"10.0.0.0/8\"]");
  ASSERT_NO_FATAL_FAILURE(start_all());
  const std::string base = "http://127.0.0.1:" + std::to_string(port());
  const std::vector<std::string> chain = {"-H", "X-Forwarded-For: 198.51.100.3, 203.0.113.9, 10.1.2.3",
                                          "-H", "X-Forwarded-Proto: https", "-H", "X-Real-IP: 6.6.6.6"};
  for (const std::vector<std::string>& proto : {std::vector<std::string>{"--http1.1"},
                                                std::vector<std::string>{"--http2-prior-knowledge"}}) {
    SCOPED_TRACE(proto[0]);
    std::vector<std::string> args = proto;
    args.insert(args.end(), chain.begin(), chain.end());
    // From the trusted 127.0.0.1: extended; the client is the rightmost untrusted address.
    CurlResult http = curl_from("127.0.0.1", base + "/echo", args);
    ASSERT_EQ(http.error, "");
    nlohmann::json e = parse_echo(http.body);
    EXPECT_EQ(echo_headers(e, "X-Forwarded-For"),
              std::vector<std::string>{"198.51.100.3, 203.0.113.9, 10.1.2.3, 127.0.0.1"}) << http.body;
    EXPECT_EQ(echo_headers(e, "X-Real-IP"), std::vector<std::string>{"203.0.113.9"}) << http.body;
    EXPECT_EQ(echo_headers(e, "X-Forwarded-Proto"), std::vector<std::string>{"https"}) << "kept from a trusted proxy";
    CurlResult cgi = curl_from("127.0.0.1", base + "/cgi-bin/env.sh", args);
    ASSERT_EQ(cgi.error, "");
    EXPECT_EQ(env_lines(cgi.body)["REMOTE_ADDR"], "203.0.113.9") << cgi.body;
    EXPECT_EQ(env_lines(cgi.body)["HTTPS"], "on") << cgi.body;
    CurlResult wsgi = curl_from("127.0.0.1", base + "/wsgi/environ", args);
    ASSERT_EQ(wsgi.error, "");
    auto j = nlohmann::json::parse(wsgi.body, nullptr, false);
    EXPECT_EQ(j.value("REMOTE_ADDR", ""), "203.0.113.9") << wsgi.body;
    EXPECT_EQ(j.value("wsgi.url_scheme", ""), "https") << wsgi.body;
    CurlResult fcgi = curl_from("127.0.0.1", base + "/fcgi/x?env", args);
    ASSERT_EQ(fcgi.error, "");
    EXPECT_EQ(env_lines(fcgi.body)["REMOTE_ADDR"], "203.0.113.9") << fcgi.body;
    EXPECT_EQ(env_lines(fcgi.body)["HTTPS"], "on") << fcgi.body;

    // From 127.0.0.2 (not trusted): replaced, as without trusted_proxies.
    CurlResult other = curl_from("127.0.0.2", base + "/echo", args);
    ASSERT_EQ(other.error, "");
    e = parse_echo(other.body);
    EXPECT_EQ(echo_headers(e, "X-Forwarded-For"), std::vector<std::string>{"127.0.0.2"}) << other.body;
    EXPECT_TRUE(echo_headers(e, "X-Real-IP").empty()) << other.body;
    EXPECT_EQ(echo_headers(e, "X-Forwarded-Proto"), std::vector<std::string>{"http"});
    CurlResult cgi2 = curl_from("127.0.0.2", base + "/cgi-bin/env.sh", args);
    EXPECT_EQ(env_lines(cgi2.body)["REMOTE_ADDR"], "127.0.0.2") << cgi2.body;
  }
  EXPECT_EQ(log_lines_with("203.0.113.9 - - [").size(), 8u) << corral_->log();
  EXPECT_TRUE(log_lines_with("6.6.6.6").empty());
}

}  // namespace
}  // namespace corral::itest
