// Several corral hosts behind a real load balancer, on one machine: the test makes its own
// network namespaces (a client "cl", the balancer "lb", two corral hosts "h1" and "h2"),
// joined by veth pairs whose 198.18.0.0/15 addresses (the range set aside for testing network
// devices) exist only inside them:
//
//   cl 198.18.0.2 ── 198.18.0.1 lb 198.18.1.1 ── 198.18.1.2 h1
//                                  198.18.2.1 ── 198.18.2.2 h2
//
// Each host is a whole corral (supervisor, proxy, workers) with its own temp dir, config and
// runtime dir, started inside its namespace with `ip netns exec`. The balancer is Debian's
// HAProxy (HTTP mode, health checks on each host's /readyz, PROXY v2 to the hosts) or nginx's
// stream module (TCP, PROXY v1). Under a steady load from the client namespace (keep-alive and
// new-connection loops, every failure counted with its error), the test does a rolling restart
// of both hosts, a reload of each with a real config change, and a kill -9 of one host's
// proxy: no request may fail in the first two (each host drains for drain_delay first: HAProxy
// must take it out while it still serves), and in the third only what the dead proxy held.
// The app must see the load client's address (through the PROXY header), not the balancer's.
//
// Skipped only when this machine cannot make network namespaces (not root, no CAP_NET_ADMIN).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/harness/audits.h"
#include "tests/integration/harness/clients.h"
#include "tests/integration/harness/config_builder.h"
#include "tests/integration/harness/corral_process.h"
#include "tests/integration/harness/netns.h"
#include "tests/integration/harness/subprocess.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr char kBalancerAddr[] = "198.18.0.1";
constexpr char kClientAddr[] = "198.18.0.2";
constexpr int kPort = 8080;       // the balancer's and every host's listener
constexpr int kAdminPort = 9180;  // every host's admin listener (/readyz)
// The balancers send the PROXY header (HAProxy v2, nginx v1) and the hosts' listeners expect
// it from the balancer's addresses only.
constexpr bool kProxyProtocol = true;
// SIGTERM drains first: /readyz fails while the listeners keep serving for drain_delay.
constexpr bool kDrain = true;

double ms(std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; }

// One HTTP/1.1 connection of the load: sends a request, reads exactly one response
// (Content-Length framed, as the testapp and corral answer), keeps what follows.
class LoadConn {
 public:
  ~LoadConn() { close(); }
  bool open(std::string* error) {
    close();
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(kPort);
    ::inet_pton(AF_INET, kBalancerAddr, &sa.sin_addr);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      *error = std::string("connect: ") + std::strerror(errno);
      close();
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buf_.clear();
    reused_ = false;
    return true;
  }
  bool is_open() const { return fd_ >= 0; }
  /// A kept-alive connection the server has closed while it was idle (HTTP lets a server
  /// do that; a client checks before reusing one, as browsers and urllib3 do).
  bool closed_while_idle() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    char c;
    return ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
  }
  bool reused() const { return reused_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool exchange(const std::string& req, RawResponse* resp, std::string* error) {
    const bool was_reused = reused_;
    reused_ = true;
    const std::string on = was_reused ? " (on a reused connection)" : " (on a new connection)";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      *error = std::string("send: ") + std::strerror(errno) + on;
      return false;
    }
    const auto deadline = Clock::now() + 5s;
    for (;;) {
      size_t head_end = buf_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::vector<RawResponse> got = parse_responses(buf_);
        if (!got.empty()) {
          std::string cl = got[0].header("Content-Length");
          size_t len = head_end + 4 + (cl.empty() ? 0 : std::stoul(cl));
          if (buf_.size() >= len) {
            *resp = got[0];
            buf_.erase(0, len);
            return true;
          }
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        *error = "no response within 5 s" + on;
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
      char tmp[16384];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0) {
        *error = std::string("recv: ") + std::strerror(errno) + (buf_.empty() ? " before any response byte" : "") + on;
        return false;
      }
      if (n == 0) {
        *error = (buf_.empty() ? "closed without a response" : "closed mid-response") + on;
        return false;
      }
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool reused_ = false;
  std::string buf_;
};

// The load: threads in the client namespace, half of them reusing one keep-alive connection
// (a new one when the server ends it), half opening a new connection per request. Every
// request must get a 200; anything else is a failure, recorded with its error and time.
class Load {
 public:
  struct Phase {
    int sent = 0, failed = 0;
    std::chrono::microseconds worst{0};
    std::map<std::string, int> bodies;  // which host and version answered, how often
    std::vector<std::string> failures;
    std::vector<Clock::time_point> failed_at;  // when each failed request was sent
  };

  Load(const NetNamespaces& net, int threads, std::chrono::milliseconds pause) : pause_(pause), t0_(Clock::now()) {
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back([this, &net, i] {
        if (!net.enter("cl")) {
          std::lock_guard<std::mutex> g(mu_);
          phase_.failures.push_back("load thread could not enter the client namespace");
          ++phase_.failed;
          return;
        }
        run(i % 2 == 0);
      });
  }
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  /// The figures since the previous take(), and a new phase from now.
  Phase take() {
    std::lock_guard<std::mutex> g(mu_);
    Phase p = std::move(phase_);
    phase_ = Phase{};
    return p;
  }
  /// Requests sent whose answer (or failure) has not come yet.
  int in_flight() const { return in_flight_; }
  /// Connections open or being opened to the balancer: a keep-alive loop holds one between
  /// requests, a new-connection loop while its request is in flight.
  int open_connections() const { return open_; }
  /// Waits until `body` has been answered `n` times in the current phase.
  bool wait_body(const std::string& body, int n, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> g(mu_);
        auto it = phase_.bodies.find(body);
        if (it != phase_.bodies.end() && it->second >= n) return true;
      }
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

 private:
  void run(bool keep_alive) {
    // The testapp sleeps 15 ms, then answers "$WHOAMI HASH LENGTH": a few requests are always
    // in flight.
    const std::string req = std::string("GET /soak?ms=15 HTTP/1.1\r\nHost: multihost\r\n") +
                            (keep_alive ? "" : "Connection: close\r\n") + "\r\n";
    LoadConn c;
    auto drop = [&] {
      if (!c.is_open()) return;
      c.close();
      --open_;
    };
    while (!stop_) {
      if (c.is_open() && c.closed_while_idle()) drop();
      const auto t0 = Clock::now();
      ++in_flight_;
      std::string error;
      RawResponse resp;
      if (!c.is_open()) {
        ++open_;
        if (!c.open(&error)) --open_;
      }
      bool ok = c.is_open() && c.exchange(req, &resp, &error);
      if (ok && resp.status != 200) {
        ok = false;
        error = "status " + std::to_string(resp.status) + " " + resp.body.substr(0, 80);
      }
      --in_flight_;
      const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
      {
        std::lock_guard<std::mutex> g(mu_);
        ++phase_.sent;
        phase_.worst = std::max(phase_.worst, took);
        if (ok) {
          ++phase_.bodies[resp.body.substr(0, resp.body.find(' '))];
        } else {
          ++phase_.failed;
          phase_.failed_at.push_back(t0);
          char at[32];
          std::snprintf(at, sizeof at, "t=%.3fs ", std::chrono::duration<double>(t0 - t0_).count());
          if (phase_.failures.size() < 50)
            phase_.failures.push_back(at + error + (keep_alive ? " [keep-alive loop]" : " [new-connection loop]"));
        }
      }
      if (!ok || !keep_alive || resp.header("Connection") == "close") drop();
      std::this_thread::sleep_for(pause_);
    }
  }

  std::chrono::milliseconds pause_;
  Clock::time_point t0_;
  std::atomic<bool> stop_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<int> open_{0};
  std::mutex mu_;
  Phase phase_;
  std::vector<std::thread> threads_;
};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v) out += "  " + s + "\n";
  return out;
}

std::string bodies_text(const std::map<std::string, int>& bodies) {
  std::string out;
  for (auto& [b, n] : bodies) out += (out.empty() ? "" : ", ") + b + ": " + std::to_string(n);
  return out;
}

// One corral host in its namespace.
struct Host {
  Host(std::string n, std::string a, std::string lb) : name(std::move(n)), addr(std::move(a)), lb_addr(std::move(lb)),
                                                       config(rt.path()) {}
  std::string name, addr, lb_addr;  // lb_addr: the balancer's address on this host's link
  TempRuntime rt;
  ConfigBuilder config;
  std::unique_ptr<CorralProcess> corral;
  int version = 1;
  std::string whoami() const { return name + "-v" + std::to_string(version); }
};

enum class Balancer { HAProxy, Nginx };

class MultiHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = NetNamespaces::unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "no multi-host test on this machine: " << why;
    net_ = std::make_unique<NetNamespaces>();
    std::string error;
    for (const char* ns : {"cl", "lb", "h1", "h2"}) ASSERT_TRUE(net_->add(ns, &error)) << error;
    ASSERT_TRUE(net_->link("lb", "198.18.0.1/24", "cl", "198.18.0.2/24", &error)) << error;
    ASSERT_TRUE(net_->link("lb", "198.18.1.1/24", "h1", "198.18.1.2/24", &error)) << error;
    ASSERT_TRUE(net_->link("lb", "198.18.2.1/24", "h2", "198.18.2.2/24", &error)) << error;
    hosts_.push_back(std::make_unique<Host>("h1", "198.18.1.2", "198.18.1.1"));
    hosts_.push_back(std::make_unique<Host>("h2", "198.18.2.2", "198.18.2.1"));
  }

  void TearDown() override {
    if (load_) load_->stop();
    if (balancer_) balancer_->stop();
    for (auto& h : hosts_) {
      if (h->corral && h->corral->running()) {
        std::optional<int> code = h->corral->stop(15s);
        EXPECT_EQ(code, std::optional<int>(0)) << h->name << ": exit status of corral-supervisor after SIGTERM";
        audit(*h);
      }
      if (h->corral) {
        std::vector<std::string> errors = error_lines(h->corral->log(), allowed_errors_);
        EXPECT_TRUE(errors.empty()) << h->name << ": error lines in the log not on the allow-list:\n" << join(errors);
      }
    }
    if (HasFailure()) {
      for (auto& h : hosts_) {
        h->rt.keep();
        if (h->corral)
          std::fprintf(stderr, "----- %s: last 80 lines of %s -----\n%s\n", h->name.c_str(),
                       h->corral->log_path().c_str(), tail_lines(h->corral->log(), 80).c_str());
      }
      lb_rt_.keep();
      std::fprintf(stderr, "----- balancer: last 60 lines of %s -----\n%s\n", lb_rt_.file("balancer.log").c_str(),
                   tail_lines(read_file(lb_rt_.file("balancer.log")), 60).c_str());
    }
    for (auto& h : hosts_)
      if (h->corral) h->corral->kill_all();
    balancer_.reset();
    net_.reset();  // the namespaces go last: nothing of the test runs in them any more
  }

  // The host's config: a listener on every address of its namespace, the admin listener
  // (/readyz for the balancer's checks), the testapp answering /whoami with "hN vV".
  void write_config(Host& h) {
    h.config = ConfigBuilder(h.rt.path());
    h.config.listeners({});
    h.config.proxy("admin", quote("0.0.0.0:" + std::to_string(kAdminPort)));
    h.config.proxy("threads", "1");
    // Longer than HAProxy takes to see /readyz fail (fall 2 × inter 200 ms), with room to spare.
    if (kDrain) h.config.supervisor("drain_delay", quote("1s"));
    h.config.app("demo").workers(2).concurrency(4);
    h.config.app("demo").env["WHOAMI"] = h.whoami();
    std::string listener = "[[listener]]\naddress = " + quote("0.0.0.0:" + std::to_string(kPort)) + "\n";
    // A reload adds a CIDR (TEST-NET-1, where nothing is) to the trusted list: the listener's
    // settings change while its socket stays.
    if (kProxyProtocol)
      listener += "proxy_protocol = true\nproxy_protocol_trusted = [" + quote(h.lb_addr + "/32") +
                  (h.version > 1 ? ", " + quote("192.0.2.0/24") : "") + "]\n";
    h.config.raw(listener);
    h.rt.write_file("corral.toml", h.config.render());
  }

  void start_host(Host& h) {
    h.corral = std::make_unique<CorralProcess>(h.rt, h.rt.file("corral.toml"), net_->exec(h.name));
    std::string error;
    ASSERT_TRUE(h.corral->start(20s, &error)) << h.name << ": " << error;
    ASSERT_TRUE(h.corral->status(&error).is_object()) << h.name << ": " << error;
  }

  void audit(Host& h) {
    std::vector<ProcInfo> left;
    for (int i = 0; i < 40; ++i) {
      left = leftover_processes(h.corral->pid(), h.rt.path(), h.corral->seen_pids(), h.corral->start_ticks());
      if (left.empty()) return;
      std::this_thread::sleep_for(50ms);
    }
    std::string list;
    for (auto& p : left) list += "  pid " + std::to_string(p.pid) + ": " + p.cmdline + "\n";
    ADD_FAILURE() << h.name << ": processes left after its supervisor exited:\n" << list;
  }

  ProcessResult ctl(Host& h, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {bin_path("corralctl"), "--socket", h.rt.runtime_dir() + "/control.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, 60s);
  }

  // ---- the balancers ----

  void start_haproxy() {
    const std::string sock = lb_rt_.file("haproxy.sock");
    std::string cfg =
        "global\n"
        "  stats socket " + sock + " level admin\n"
        "  log stdout format raw local0 info\n"
        "  maxconn 4000\n"
        "defaults\n"
        "  mode http\n"
        "  log global\n"
        "  option httplog\n"
        "  timeout connect 2s\n"
        "  timeout client 30s\n"
        "  timeout server 30s\n"
        "  timeout check 1s\n"
        // A request whose connection could not be made goes to another server (never a request
        // a server may have seen: retry-on stays at its default, conn-failure).
        "  retries 3\n"
        "  option redispatch 1\n"
        "frontend web\n"
        "  bind " + std::string(kBalancerAddr) + ":" + std::to_string(kPort) + "\n"
        "  default_backend corral\n"
        "backend corral\n"
        "  balance roundrobin\n"
        "  option httpchk\n"
        "  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host lb\n"
        "  http-check expect status 200\n"
        "  default-server check port " + std::to_string(kAdminPort) + " inter 200ms fall 2 rise 2\n";
    for (auto& h : hosts_)
      cfg += "  server " + h->name + " " + h->addr + ":" + std::to_string(kPort) + (kProxyProtocol ? " send-proxy-v2" : "") + "\n";
    std::string path = lb_rt_.write_file("haproxy.cfg", cfg);
    ProcessResult check = run_process({"haproxy", "-c", "-f", path}, 20s);
    ASSERT_EQ(check.exit_code, 0) << "haproxy (Debian's haproxy package; packaging/install-deps.sh test installs it) "
                                  << "rejected its config:\n" << check.out << check.err << cfg;
    std::vector<std::string> argv = net_->exec("lb");
    argv.insert(argv.end(), {"haproxy", "-db", "-f", path});
    balancer_ = std::make_unique<BackgroundProcess>();
    std::string error;
    ASSERT_TRUE(balancer_->start(argv, lb_rt_.file("balancer.log"), &error)) << error;
  }

  // HAProxy's view of server `name` ("UP", "DOWN", "UP 1/2", ...) from its stats socket.
  std::string haproxy_state(const std::string& name) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, lb_rt_.file("haproxy.sock").c_str(), sizeof sa.sun_path - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      if (fd >= 0) ::close(fd);
      return "";
    }
    const char cmd[] = "show stat\n";
    std::string out;
    if (::send(fd, cmd, sizeof cmd - 1, MSG_NOSIGNAL) == sizeof cmd - 1) {
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    // CSV: "# pxname,svname,...,status,..." then one line per proxy/server.
    std::vector<std::string> lines = split_lines(out);
    if (lines.empty()) return "";
    std::vector<std::string> head = split_csv(lines[0].substr(lines[0].rfind('#', 0) == 0 ? 2 : 0));
    auto col = std::find(head.begin(), head.end(), "status");
    if (col == head.end()) return "";
    for (auto& l : lines) {
      std::vector<std::string> f = split_csv(l);
      if (f.size() > static_cast<size_t>(col - head.begin()) && f[0] == "corral" && f[1] == name)
        return f[static_cast<size_t>(col - head.begin())];
    }
    return "";
  }

  static std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
      size_t nl = s.find('\n', start);
      if (nl == std::string::npos) nl = s.size();
      if (nl > start) out.push_back(s.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }
  static std::vector<std::string> split_csv(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
      size_t c = s.find(',', start);
      out.push_back(s.substr(start, c == std::string::npos ? std::string::npos : c - start));
      if (c == std::string::npos) return out;
      start = c + 1;
    }
  }

  void start_nginx() {
    // Debian builds the stream module as a dynamic module (libnginx-mod-stream); a build with
    // it compiled in needs no load_module.
    ProcessResult v = run_process({"nginx", "-V"}, 20s);
    ASSERT_EQ(v.exit_code, 0) << "no nginx (packaging/install-deps.sh test installs nginx-light): " << v.err;
    std::string head;
    if (v.err.find("--with-stream=dynamic") != std::string::npos) {
      const std::string so = "/usr/lib/nginx/modules/ngx_stream_module.so";
      ASSERT_EQ(::access(so.c_str(), R_OK), 0)
          << "nginx's stream module is dynamic and " << so
          << " is missing (packaging/install-deps.sh test installs libnginx-mod-stream)";
      head = "load_module " + so + ";\n";
    } else {
      ASSERT_NE(v.err.find("--with-stream"), std::string::npos) << "this nginx has no stream module:\n" << v.err;
    }
    std::string cfg = head +
                      "daemon off;\n"
                      "worker_processes 1;\n"
                      "pid " + lb_rt_.file("nginx.pid") + ";\n"
                      "error_log stderr info;\n"
                      "events { worker_connections 1024; }\n"
                      "stream {\n"
                      "  log_format basic '$remote_addr $upstream_addr $status $session_time';\n"
                      "  access_log /dev/stdout basic;\n"
                      "  upstream corral {\n";
    // A host that refuses a connection is left alone for a second; the connection goes to the next.
    for (auto& h : hosts_)
      cfg += "    server " + h->addr + ":" + std::to_string(kPort) + " max_fails=1 fail_timeout=1s;\n";
    cfg += "  }\n"
           "  server {\n"
           "    listen " + std::string(kBalancerAddr) + ":" + std::to_string(kPort) + ";\n"
           "    proxy_pass corral;\n"
           + std::string(kProxyProtocol ? "    proxy_protocol on;\n" : "") +
           "    proxy_connect_timeout 2s;\n"
           "    proxy_next_upstream on;\n"
           "    proxy_next_upstream_tries 3;\n"
           "  }\n"
           "}\n";
    std::string path = lb_rt_.write_file("nginx.conf", cfg);
    std::vector<std::string> argv = net_->exec("lb");
    argv.insert(argv.end(), {"nginx", "-e", "stderr", "-p", lb_rt_.path(), "-c", path});
    balancer_ = std::make_unique<BackgroundProcess>();
    std::string error;
    ASSERT_TRUE(balancer_->start(argv, lb_rt_.file("balancer.log"), &error)) << error;
  }

  // /readyz of a host, asked from the balancer's namespace: the status code, 0 when refused.
  int readyz(const Host& h) {
    ProcessResult r = net_->run("lb", {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                       "http://" + h.addr + ":" + std::to_string(kAdminPort) + "/readyz"},
                                10s);
    return std::atoi(r.out.c_str());
  }

  // Until the balancer sends this host traffic again: HAProxy's check says UP; nginx has no
  // health checks of its own, so /readyz answering 200 (and the second of fail_timeout after a
  // refused connection) is as close as it gets.
  bool wait_balancer_sees_up(Balancer b, Host& h, std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (b == Balancer::HAProxy ? haproxy_state(h.name) == "UP" : readyz(h) == 200) {
        if (b == Balancer::Nginx) std::this_thread::sleep_for(1100ms);
        return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // The client address each host's app saw (X-Forwarded-For) and logged, for /echo requests
  // made from the client namespace through the balancer: with the PROXY header it is the load
  // client's, 198.18.0.2; without it, the balancer's address on that host's link.
  void check_client_address(const char* balancer) {
    std::vector<std::string> seen;
    std::string error;
    std::thread t([&] {
      if (!net_->enter("cl")) {
        error = "cannot enter the client namespace";
        return;
      }
      for (int i = 0; i < 6; ++i) {
        LoadConn c;
        RawResponse resp;
        if (!c.open(&error) ||
            !c.exchange("GET /echo?client-address HTTP/1.1\r\nHost: multihost\r\nConnection: close\r\n\r\n",
                        &resp, &error))
          return;
        std::vector<std::string> xff = echo_headers(parse_echo(resp.body), "X-Forwarded-For");
        seen.push_back(xff.empty() ? "(none)" : xff.back());
      }
    });
    t.join();
    ASSERT_TRUE(error.empty()) << error;
    std::set<std::string> expected;
    if (kProxyProtocol) expected.insert(kClientAddr);
    else
      for (auto& h : hosts_) expected.insert(h->lb_addr);
    for (auto& x : seen) EXPECT_EQ(expected.count(x), 1u) << balancer << ": the app saw X-Forwarded-For " << x;
    for (auto& h : hosts_) {
      int lines = 0;
      for (auto& l : grep_lines(h->corral->log(), "\"GET /echo?client-address")) {
        if (l.find("testapp pid=") != std::string::npos) continue;
        ++lines;
        const std::string from = kProxyProtocol ? std::string(kClientAddr) : h->lb_addr;
        EXPECT_EQ(l.rfind(from + " - - [", 0), 0u) << h->name << "'s access log: " << l;
      }
      EXPECT_GT(lines, 0) << h->name << " logged no /echo request";
      // Every header the balancer sent was well-formed and came from a trusted address.
      ProcessResult m = net_->run("lb", {"curl", "-s", "--max-time", "5",
                                         "http://" + h->addr + ":" + std::to_string(kAdminPort) + "/metrics"}, 10s);
      ASSERT_EQ(m.exit_code, 0) << h->name << " /metrics: " << m.err;
      EXPECT_EQ(metric_sum(m.out, "corral_connections_refused_total{listener="), 0.0)
          << h->name << " refused connections from the balancer";
    }
    std::printf("[%s] the app saw the client as %s\n", balancer, seen.empty() ? "?" : seen[0].c_str());
  }

  void report(const char* balancer, const char* phase, const Load::Phase& p, const std::string& extra = "") {
    std::printf("[%s] %-16s %5d requests, %d failed, worst latency %.1f ms%s; answered by %s\n", balancer, phase,
                p.sent, p.failed, ms(p.worst), extra.c_str(), bodies_text(p.bodies).c_str());
    std::fflush(stdout);
  }

  void run_scenario(Balancer b);

  std::unique_ptr<NetNamespaces> net_;
  std::vector<std::unique_ptr<Host>> hosts_;
  TempRuntime lb_rt_;
  std::unique_ptr<BackgroundProcess> balancer_;
  std::unique_ptr<Load> load_;
  // The kill -9 of a proxy is reported by its supervisor.
  std::vector<std::string> allowed_errors_ = {"signal", "killed", "exited", "restart"};
};

void MultiHostTest::run_scenario(Balancer b) {
  const char* name = b == Balancer::HAProxy ? "haproxy" : "nginx";
  for (auto& h : hosts_) {
    write_config(*h);
    ASSERT_NO_FATAL_FAILURE(start_host(*h));
  }
  if (b == Balancer::HAProxy) {
    ASSERT_NO_FATAL_FAILURE(start_haproxy());
  } else {
    ASSERT_NO_FATAL_FAILURE(start_nginx());
  }
  for (auto& h : hosts_) ASSERT_TRUE(wait_balancer_sees_up(b, *h, 10s)) << h->name << " never seen up by " << name;

  // ~170 requests/s: 6 loops, a 20 ms pause after each answer.
  load_ = std::make_unique<Load>(*net_, 6, 20ms);
  std::this_thread::sleep_for(1s);
  Load::Phase steady = load_->take();
  report(name, "steady", steady);
  ASSERT_EQ(steady.failed, 0) << join(steady.failures);
  ASSERT_GT(steady.sent, 50);
  for (auto& h : hosts_) EXPECT_GT(steady.bodies[h->whoami()], 0) << h->name << " got no requests";

  // Rolling restart: one host at a time, TERM → exited → started → the balancer sees it up.
  for (auto& h : hosts_) {
    h->corral->signal(SIGTERM);
    if (b == Balancer::HAProxy) {
      // The drain: /readyz fails at once, so HAProxy takes the host out while it still serves.
      auto deadline = Clock::now() + 5s;
      while (haproxy_state(h->name).rfind("DOWN", 0) != 0 && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
      EXPECT_EQ(haproxy_state(h->name).rfind("DOWN", 0), 0u) << "HAProxy never saw " << h->name << " draining";
      EXPECT_TRUE(h->corral->running()) << h->name << " stopped before HAProxy took it out (drain_delay)";
    }
    std::optional<int> code = h->corral->wait_exit(20s);
    ASSERT_EQ(code, std::optional<int>(0)) << h->name << ": exit status after SIGTERM";
    audit(*h);
    ASSERT_NO_FATAL_FAILURE(start_host(*h));
    ASSERT_TRUE(wait_balancer_sees_up(b, *h, 10s)) << h->name << " not seen up again by " << name;
    ASSERT_TRUE(load_->wait_body(h->whoami(), 5, 5s)) << h->name << " answers nothing after its restart";
    std::this_thread::sleep_for(500ms);
  }
  Load::Phase rolling = load_->take();
  report(name, "rolling restart", rolling);
  EXPECT_EQ(rolling.failed, 0) << "requests failed during the rolling restart:\n" << join(rolling.failures);

  // A reload of each host with a real change: the app's environment (a new generation of
  // workers answering "hN-v2") and the listener's trusted balancers.
  for (auto& h : hosts_) {
    ++h->version;
    write_config(*h);
    ProcessResult r = ctl(*h, {"reload"});
    ASSERT_EQ(r.exit_code, 0) << h->name << ": corralctl reload: " << r.out << r.err;
    ASSERT_TRUE(load_->wait_body(h->whoami(), 5, 5s)) << h->name << " does not answer with its new config";
    std::this_thread::sleep_for(500ms);
  }
  Load::Phase reloads = load_->take();
  report(name, "reloads", reloads);
  EXPECT_EQ(reloads.failed, 0) << "requests failed during the reloads:\n" << join(reloads.failures);
  std::this_thread::sleep_for(300ms);
  Load::Phase after_reload = load_->take();
  for (auto& h : hosts_) {
    const std::string old = h->name + "-v" + std::to_string(h->version - 1);
    EXPECT_EQ(after_reload.bodies.count(old), 0u) << h->name << "'s old generation still answers after its reload";
  }

  // kill -9 of one host's proxy: its supervisor starts another on the same listening sockets,
  // and new connections wait in their backlog meanwhile. What may fail is what the dead proxy
  // held: a request in flight, or one sent on a kept-alive connection before its close reached
  // the client: at most one request per connection open at the kill, none after the new proxy
  // is up.
  Host& victim = *hosts_[0];
  nlohmann::json st = victim.corral->status();
  ASSERT_TRUE(st.is_object() && st.contains("proxy"));
  const pid_t proxy = st["proxy"].value("pid", 0);
  ASSERT_GT(proxy, 0);
  load_->take();
  const int in_flight = load_->in_flight();
  const int open_conns = load_->open_connections();
  ASSERT_EQ(::kill(proxy, SIGKILL), 0);
  const auto killed_at = Clock::now();
  bool replaced = false;
  while (Clock::now() - killed_at < 15s && !replaced) {
    std::this_thread::sleep_for(20ms);
    nlohmann::json s = victim.corral->status();
    replaced = s.is_object() && s.contains("proxy") && s["proxy"].is_object() && s["proxy"].value("pid", 0) > 0 &&
               s["proxy"].value("pid", 0) != proxy;
  }
  ASSERT_TRUE(replaced) << victim.name << "'s supervisor did not start a new proxy";
  const auto replaced_at = Clock::now();
  ASSERT_TRUE(wait_balancer_sees_up(b, victim, 10s)) << victim.name << " not seen up after its proxy was killed";
  ASSERT_TRUE(load_->wait_body(victim.whoami(), 5, 5s)) << victim.name << " answers nothing after its proxy was killed";
  std::this_thread::sleep_for(500ms);
  Load::Phase kill = load_->take();
  char extra[160];
  std::snprintf(extra, sizeof extra, " (%d in flight and %d connections open at the kill; new proxy after %.0f ms)",
                in_flight, open_conns, std::chrono::duration<double, std::milli>(replaced_at - killed_at).count());
  report(name, "proxy kill -9", kill, extra);
  EXPECT_LE(kill.failed, open_conns) << "more requests failed than connections were open at the kill:\n"
                                     << join(kill.failures);
  for (size_t i = 0; i < kill.failed_at.size(); ++i)
    EXPECT_LT(kill.failed_at[i], replaced_at) << "a request sent after the new proxy was up failed: " << kill.failures[i];

  load_->stop();
  Load::Phase tail = load_->take();
  EXPECT_EQ(tail.failed, 0) << join(tail.failures);
  check_client_address(name);
}

TEST_F(MultiHostTest, HAProxyRollingRestartReloadsAndProxyKill) { run_scenario(Balancer::HAProxy); }

TEST_F(MultiHostTest, NginxStreamRollingRestartReloadsAndProxyKill) { run_scenario(Balancer::Nginx); }

}  // namespace
}  // namespace corral::itest
