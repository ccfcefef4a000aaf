// corral-testapp: a small HTTP/1.1 server used as the worker app in integration tests and
// as the backend of the benchmarks. Thread per connection, keep-alive, one writev per
// response. See handlers.h for the endpoints.
//
//   corral-testapp                      LISTEN_FDS=1 and LISTEN_PID=<pid>: accept on fd 3
//   corral-testapp --unix PATH          bind PATH itself
//   corral-testapp --listen HOST:PORT   TCP (direct baseline for benchmarks)
//   --sync                              one request at a time per process, like a Gunicorn sync
//                                       worker: other connections wait (benchmark scenario 4)
//
// TESTAPP_LOG=1: one line per request on stdout ("testapp pid=N GET /path").
// TESTAPP_CAPTURE=DIR: every request received is written to DIR/<pid>-<n>.req before it is
// answered (written aside, then renamed: a reader never sees half a file): one line
// "corral-capture app=$WHOAMI read=ok|malformed|bad-body body=N", then the head exactly as
// it arrived, then the body as read (de-chunked); paths that are no endpoint answer 200
// "captured" instead of 404. The hostile-input suite (tests/hostile) reads these.
// SIGTERM: stop accepting, finish in-flight requests, exit 0. SIGINT: exit at once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "connections.h"
#include "handlers.h"
#include "leftovers.h"
#include "request_reader.h"

namespace testapp {
namespace {

int g_signal_pipe[2] = {-1, -1};
Counters g_counters;
Connections g_connections;
bool g_log = false;
std::string g_capture_dir;
std::atomic<uint64_t> g_capture_seq{0};
bool g_sync = false;
std::mutex g_sync_mu;

void on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "testapp: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

bool write_all(int fd, const std::string& head, const std::string& body) {
  iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                  {const_cast<char*>(body.data()), body.size()}};
  int cnt = body.empty() ? 1 : 2;
  iovec* v = iov;
  while (cnt > 0) {
    ssize_t n = ::writev(fd, v, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    size_t left = static_cast<size_t>(n);
    while (cnt > 0 && left >= v->iov_len) {
      left -= v->iov_len;
      ++v;
      --cnt;
    }
    if (cnt > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + left;
      v->iov_len -= left;
    }
  }
  return true;
}

void log_request(const Request& req) {
  std::string line = "testapp pid=" + std::to_string(::getpid()) + " " + req.method + " " + req.target + "\n";
  [[maybe_unused]] ssize_t n = ::write(1, line.data(), line.size());
}

void capture_request(const Request& req, const char* read, const std::string& body) {
  if (g_capture_dir.empty()) return;
  const char* who = std::getenv("WHOAMI");
  std::string name = g_capture_dir + "/" + std::to_string(::getpid()) + "-" + std::to_string(++g_capture_seq);
  std::string text = "corral-capture app=" + std::string(who ? who : "") + " read=" + read +
                     " body=" + std::to_string(body.size()) + "\n" + req.raw_head + body;
  int fd = ::open((name + ".tmp").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  bool ok = write_all(fd, text, std::string());
  ::close(fd);
  if (ok) ::rename((name + ".tmp").c_str(), (name + ".req").c_str());
}

void note_in_flight_start() {
  int now = ++g_counters.in_flight;
  int seen = g_counters.max_in_flight.load();
  while (now > seen && !g_counters.max_in_flight.compare_exchange_weak(seen, now)) {
  }
}

void serve_connection(int fd) {
  uint64_t serial = ++g_counters.connections;
  RequestReader reader(fd);
  for (;;) {
    if (!g_connections.set_idle(fd)) break;
    Request req;
    ReadStatus st = reader.read_head(req, [fd] { g_connections.set_busy(fd); });
    if (st == ReadStatus::Closed) break;
    if (st != ReadStatus::Ok) {
      if (st == ReadStatus::Malformed && !req.raw_head.empty()) capture_request(req, "malformed", "");
      Response bad;
      bad.status = st == ReadStatus::TooLarge ? 431 : 400;
      bad.body = "bad request\n";
      write_all(fd, serialize_head(bad, false), bad.body);
      break;
    }
    std::unique_lock<std::mutex> one_at_a_time;
    if (g_sync) one_at_a_time = std::unique_lock(g_sync_mu);
    bool counted = !is_introspection(req);
    if (counted) note_in_flight_start();
    ++g_counters.requests;
    if (g_log) log_request(req);
    // /sha256 and .../soak: the body is hashed as it is read, never held (uploads of any
    // size); with TESTAPP_LOG=1 the first body bytes are logged as they arrive ("... first
    // body bytes").
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(nullptr, EVP_MD_CTX_free);
    uint64_t body_bytes = 0;
    if (req.path() == "/sha256" || is_soak(req)) {
      md.reset(EVP_MD_CTX_new());
      EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
      req.body_sink = [&](const char* p, size_t n) {
        if (body_bytes == 0 && g_log) {
          std::string line = "testapp pid=" + std::to_string(::getpid()) + " first body bytes " + req.target + "\n";
          [[maybe_unused]] ssize_t w = ::write(1, line.data(), line.size());
        }
        body_bytes += n;
        EVP_DigestUpdate(md.get(), p, n);
      };
    }
    // /early: the answer goes out before any body byte is read (an app that refuses an
    // upload, or answers at once); the body is then read and dropped, and the connection
    // closes.
    if (req.path() == "/early") {
      Response resp = handle(req, g_counters, serial);
      if (counted) --g_counters.in_flight;
      write_all(fd, serialize_head(resp, false), resp.body);
      req.body_sink = [](const char*, size_t) {};
      reader.read_body(req);
      break;
    }
    // ?body_delay_ms=N: a slow app that takes its time before it reads the body.
    if (long delay = std::strtol(req.query("body_delay_ms", "0").c_str(), nullptr, 10); delay > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(delay, 60'000L)));
    st = reader.read_body(req);
    if (md && st == ReadStatus::Ok) {
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      EVP_DigestFinal_ex(md.get(), digest, &len);
      static constexpr char kHex[] = "0123456789abcdef";
      std::string hex;
      for (unsigned int i = 0; i < len; ++i) {
        hex.push_back(kHex[digest[i] >> 4]);
        hex.push_back(kHex[digest[i] & 15]);
      }
      req.body = hex + " " + std::to_string(body_bytes) + "\n";
    }
    capture_request(req, st == ReadStatus::Ok ? "ok" : "bad-body", req.body);
    bool ok = false;
    if (st != ReadStatus::Ok) {
      Response bad;
      bad.status = 400;
      bad.body = "bad request body\n";
      write_all(fd, serialize_head(bad, false), bad.body);
      req.keep_alive = false;
    } else {
      Response resp = handle(req, g_counters, serial);
      if (!resp.raw.empty()) {  // /bad-response: the canned bytes, then close
        if (counted) --g_counters.in_flight;
        counted = false;
        write_all(fd, resp.raw, std::string());
        break;
      }
      // A capturing app answers any path: hostile cases use targets of every shape.
      if (!g_capture_dir.empty() && resp.status == 404 && req.path() != "/env") {
        resp.status = 200;
        resp.body = "captured\n";
      }
      if (resp.exit_now) ::_exit(3);
      bool keep = req.keep_alive && !g_connections.stopping();
      std::string head = resp.interim + serialize_head(resp, keep);
      // Leave the in-flight count before the first byte goes out: once the peer can see
      // the response it may send the next request, which must not be counted as overlap.
      if (counted) --g_counters.in_flight;
      counted = false;
      ok = write_all(fd, head, req.method == "HEAD" ? std::string() : resp.body);
      req.keep_alive = keep;
      if (resp.close_listener) {
        unsigned char b = 'C';  // the accept loop closes it
        [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &b, 1);
      }
    }
    if (counted) --g_counters.in_flight;
    if (!ok || !req.keep_alive) break;
  }
  g_connections.remove(fd);
  ::close(fd);
}

int listen_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    die("unix path " + path);
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) die("bind " + path);
  if (::listen(fd, 1024) < 0) die("listen");
  return fd;
}

int listen_tcp(const std::string& hostport) {
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    errno = EINVAL;
    die("--listen wants HOST:PORT");
  }
  std::string host = hostport.substr(0, colon);
  int port = std::atoi(hostport.c_str() + colon + 1);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    errno = EINVAL;
    die("bad address " + host);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) die("bind " + hostport);
  if (::listen(fd, 1024) < 0) die("listen");
  return fd;
}

int inherited_fd() {
  if (::fcntl(3, F_GETFD) < 0) return -1;
  const char* fds = std::getenv("LISTEN_FDS");
  const char* pid = std::getenv("LISTEN_PID");
  if (fds == nullptr || pid == nullptr) return -1;
  if (std::atoi(fds) < 1 || std::atol(pid) != static_cast<long>(::getpid())) return -1;
  ::fcntl(3, F_SETFD, FD_CLOEXEC);
  return 3;
}

int run(int argc, char** argv) {
  std::string unix_path, tcp;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--unix" && i + 1 < argc) {
      unix_path = argv[++i];
    } else if (a == "--listen" && i + 1 < argc) {
      tcp = argv[++i];
    } else if (a == "--sync") {
      g_sync = true;
    } else if (a == "--threads" && i + 1 < argc) {
      ++i;  // accepted for compatibility: one thread per connection anyway
    } else {
      std::fprintf(stderr, "usage: corral-testapp [--unix PATH | --listen HOST:PORT] [--sync]\n");
      return 2;
    }
  }
  const char* log_env = std::getenv("TESTAPP_LOG");
  g_log = log_env != nullptr && std::strcmp(log_env, "1") == 0;
  if (const char* cap = std::getenv("TESTAPP_CAPTURE")) g_capture_dir = cap;

  int lfd = inherited_fd();
  bool is_tcp = false;
  if (lfd < 0 && !unix_path.empty()) lfd = listen_unix(unix_path);
  if (lfd < 0 && !tcp.empty()) {
    lfd = listen_tcp(tcp);
    is_tcp = true;
  }
  if (lfd < 0) {
    std::fprintf(stderr, "testapp: no socket: need LISTEN_FDS/LISTEN_PID, --unix or --listen\n");
    return 2;
  }

  set_listen_fd(lfd);
  if (::pipe2(g_signal_pipe, O_CLOEXEC) < 0) die("pipe");
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGQUIT, &sa, nullptr);

  if (g_log) {
    std::string line = "testapp pid=" + std::to_string(::getpid()) + " ready\n";
    [[maybe_unused]] ssize_t n = ::write(1, line.data(), line.size());
  }

  for (;;) {
    pollfd p[2] = {{lfd, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[1].revents != 0) {
      unsigned char sig = 0;
      [[maybe_unused]] ssize_t r = ::read(g_signal_pipe[0], &sig, 1);
      if (sig == 'C') {  // /close-listener: stop listening, stay alive
        if (lfd >= 0) ::close(lfd);
        lfd = -1;
        continue;
      }
      if (sig != SIGTERM) ::_exit(0);
      break;
    }
    if (p[0].revents != 0) {
      int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {
          ::usleep(10'000);
          continue;
        }
        die("accept");
      }
      // The listening socket may be non-blocking (inherited); the connection must not be.
      ::fcntl(cfd, F_SETFL, ::fcntl(cfd, F_GETFL) & ~O_NONBLOCK);
      if (is_tcp) {
        int one = 1;
        ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      if (!g_connections.add(cfd)) {
        ::close(cfd);
        continue;
      }
      std::thread(serve_connection, cfd).detach();
    }
  }

  // Graceful stop: no new connections, idle ones closed, busy ones finish their request.
  if (lfd >= 0) ::close(lfd);
  g_connections.stop();
  bool drained = g_connections.wait_empty(std::chrono::seconds(120));
  if (g_log) {
    std::string line = "testapp pid=" + std::to_string(::getpid()) + (drained ? " stopped\n" : " stop timed out\n");
    [[maybe_unused]] ssize_t n = ::write(1, line.data(), line.size());
  }
  ::_exit(0);
}

}  // namespace
}  // namespace testapp

int main(int argc, char** argv) { return testapp::run(argc, argv); }
