// In-process proxy tests: a real LoopThread (real ev::Loop, sessions, dispatcher, upstream
// pool) with the client on a socketpair and a tiny HTTP/1.1 worker on a Unix socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/net/socket.h"
#include "proxy/loop_thread.h"
#include "proxy/runtime.h"

namespace corral::proxy {
namespace {

using namespace std::chrono_literals;

bool read_more(int fd, std::string& buf) {
  char tmp[8192];
  ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf.append(tmp, static_cast<size_t>(n));
  return true;
}

size_t content_length_of(std::string_view head) {
  for (std::string_view key : {"Content-Length: ", "content-length: "}) {
    size_t p = head.find(key);
    if (p != std::string_view::npos) return std::stoul(std::string(head.substr(p + key.size())));
  }
  return 0;
}

// A tiny worker: one thread per connection, keep-alive, behaviour chosen by the target.
class TestWorker {
 public:
  explicit TestWorker(std::string path) : path_(std::move(path)) {
    auto fd = net::listen_unix(path_);
    EXPECT_TRUE(fd) << fd.error().message();
    listen_fd_ = std::move(*fd);
    (void)net::set_nonblocking(listen_fd_.get(), false);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TestWorker() {
    stop_ = true;
    ::shutdown(listen_fd_.get(), SHUT_RDWR);
    acceptor_.join();
    std::lock_guard<std::mutex> g(mu_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : handlers_) t.detach();
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> g(mu_);
    return requests_;
  }
  int connections() const { return accepted_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      int c = ::accept(listen_fd_.get(), nullptr, nullptr);
      if (c < 0) return;
      accepted_++;
      std::lock_guard<std::mutex> g(mu_);
      conns_.push_back(c);
      handlers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int fd) {
    std::string buf;
    while (true) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos)
        if (!read_more(fd, buf)) return ::close(fd), void();
      std::string head = buf.substr(0, end + 4);
      size_t len = content_length_of(head);
      while (buf.size() < end + 4 + len)
        if (!read_more(fd, buf)) return ::close(fd), void();
      std::string body = buf.substr(end + 4, len);
      buf.erase(0, end + 4 + len);
      {
        std::lock_guard<std::mutex> g(mu_);
        requests_.push_back(head + body);
      }
      std::string target = head.substr(head.find(' ') + 1);
      target = target.substr(0, target.find(' '));
      std::string method = head.substr(0, head.find(' '));
      std::string resp;
      if (target == "/close") {
        ::close(fd);
        return;
      } else if (target == "/hang") {
        std::this_thread::sleep_for(1500ms);
        ::close(fd);
        return;
      } else if (target == "/chunked") {
        resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
      } else {
        if (target == "/slow") std::this_thread::sleep_for(150ms);
        std::string out = method + " " + target + " " + std::to_string(body.size()) + "\n";
        resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(out.size()) +
               "\r\nConnection: keep-alive\r\n\r\n" + out;
      }
      if (!net::write_all(fd, resp)) return ::close(fd), void();
    }
  }

  std::string path_;
  UniqueFd listen_fd_;
  std::thread acceptor_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> handlers_;
  std::vector<std::string> requests_;
};

struct Response {
  std::string head;
  std::string body;
  int status = 0;
  bool has(std::string_view s) const { return head.find(s) != std::string::npos; }
};

// Client on a blocking socket with a receive timeout.
class Client {
 public:
  explicit Client(int fd) : fd_(fd) {
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { ::close(fd_); }
  void send(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      s.remove_prefix(static_cast<size_t>(n));
    }
  }
  int fd() const { return fd_; }
  // Reads one response (Content-Length, chunked, or until close).
  Response read() {
    Response r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!read_more(fd_, buf_)) return r;
    r.head = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    r.status = std::stoi(r.head.substr(9, 3));
    if (r.status == 100) return r;
    if (r.has("Transfer-Encoding: chunked")) {
      // Decode chunks.
      while (true) {
        size_t le;
        while ((le = buf_.find("\r\n")) == std::string::npos)
          if (!read_more(fd_, buf_)) return r;
        size_t n = std::stoul(buf_.substr(0, le), nullptr, 16);
        while (buf_.size() < le + 2 + n + 2)
          if (!read_more(fd_, buf_)) return r;
        r.body += buf_.substr(le + 2, n);
        buf_.erase(0, le + 2 + n + 2);
        if (n == 0) break;
      }
    } else if (r.has("Content-Length: ")) {
      size_t len = content_length_of(r.head);
      while (buf_.size() < len)
        if (!read_more(fd_, buf_)) return r;
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    } else {
      while (read_more(fd_, buf_)) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }
  // True when the peer closed (EOF) with nothing more to read.
  bool at_eof() {
    if (!buf_.empty()) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_;
  std::string buf_;
};

class Http1ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/crl-pxXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sock_ = dir_ + "/w0.sock";
    worker_ = std::make_unique<TestWorker>(sock_);

    conf::Config cfg;
    cfg.proxy.max_body_size = 1024;
    cfg.proxy.max_header_size = 2048;
    cfg.proxy.client_header_timeout = 2000ms;
    cfg.proxy.keepalive_timeout = keepalive_;
    conf::Route route;
    route.host = "test.local";
    route.path = "/";
    route.app = "app";
    cfg.routes.push_back(route);
    conf::App app;
    app.name = "app";
    app.concurrency = 4;
    app.timeout = 400ms;
    app.queue_timeout = 300ms;
    cfg.apps.push_back(app);
    auto rt = make_runtime(cfg, 1, dispatchers_);
    control::SlotInfo slot;
    slot.app = "app";
    slot.slot = 0;
    slot.generation = 1;
    slot.path = sock_;
    slot.concurrency = 4;
    dispatchers_["app"]->update_slots({slot});

    shared_.on_hung = [this](const std::string& a, int s, uint64_t, std::string rid) {
      std::lock_guard<std::mutex> g(mu_);
      hung_.push_back(a + "#" + std::to_string(s) + " " + rid);
    };
    loop_ = std::make_unique<LoopThread>(0, shared_);
    loop_->start();
    loop_->set_runtime(rt);
  }
  void TearDown() override {
    loop_.reset();
    worker_.reset();
    ::unlink(sock_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::unique_ptr<Client> connect() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    (void)net::set_nonblocking(sv[0]);
    int server_end = sv[0];
    LoopThread* lt = loop_.get();
    loop_->loop().post([lt, server_end] { lt->adopt(UniqueFd(server_end), "10.9.8.7"); });
    return std::make_unique<Client>(sv[1]);
  }

  /// Runs fn on the loop thread and returns its result.
  template <class F>
  auto on_loop(F fn) {
    std::promise<decltype(fn())> p;
    auto f = p.get_future();
    loop_->loop().post([&] { p.set_value(fn()); });
    return f.get();
  }
  /// Waits (up to 2 s) until `want` connections are parked.
  bool wait_parked(size_t want) {
    for (int i = 0; i < 200; ++i) {
      if (on_loop([this] { return loop_->parked_count(); }) == want) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }

  std::chrono::milliseconds keepalive_ = 75000ms;
  std::string dir_, sock_;
  std::unique_ptr<TestWorker> worker_;
  std::map<std::string, std::shared_ptr<AppDispatcher>> dispatchers_;
  LoopShared shared_;
  std::unique_ptr<LoopThread> loop_;
  std::mutex mu_;
  std::vector<std::string> hung_;
};

TEST_F(Http1ProxyTest, KeepAliveReusesClientAndWorkerConnections) {
  auto c = connect();
  c->send("GET /a HTTP/1.1\r\nHost: test.local\r\n\r\n");
  Response r1 = c->read();
  EXPECT_EQ(r1.status, 200);
  EXPECT_EQ(r1.body, "GET /a 0\n");
  EXPECT_FALSE(r1.has("Connection: keep-alive"));  // hop-by-hop from the worker is dropped
  c->send("GET /b HTTP/1.1\r\nHost: test.local\r\n\r\n");
  Response r2 = c->read();
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(r2.body, "GET /b 0\n");
  EXPECT_EQ(worker_->connections(), 1);  // the pooled upstream connection was reused
}

TEST_F(Http1ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
  auto c = connect();
  c->send(
      "GET /slow HTTP/1.1\r\nHost: test.local\r\n\r\n"
      "GET /second HTTP/1.1\r\nHost: test.local\r\n\r\n"
      "POST /third HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_EQ(c->read().body, "GET /slow 0\n");
  EXPECT_EQ(c->read().body, "GET /second 0\n");
  EXPECT_EQ(c->read().body, "POST /third 3\n");
}

TEST_F(Http1ProxyTest, ChunkedRequestBodyIsReframedWithContentLength) {
  auto c = connect();
  c->send(
      "POST /up HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n"
      "X-Forwarded-For: 6.6.6.6\r\nX-Request-Id: forged\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /up 11\n");
  auto reqs = worker_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  const std::string& up = reqs[0];
  EXPECT_NE(up.find("POST /up HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(up.find("Content-Length: 11\r\n"), std::string::npos);
  EXPECT_EQ(up.find("Transfer-Encoding"), std::string::npos);
  EXPECT_NE(up.find("X-Forwarded-For: 10.9.8.7\r\n"), std::string::npos);
  EXPECT_EQ(up.find("6.6.6.6"), std::string::npos);
  EXPECT_EQ(up.find("forged"), std::string::npos);
  EXPECT_NE(up.find("X-Request-Id: "), std::string::npos);
  EXPECT_NE(up.find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_EQ(up.substr(up.size() - 11), "hello world");
}

TEST_F(Http1ProxyTest, ChunkedResponseIsRechunkedForHttp11AndCloseDelimitedForHttp10) {
  auto c = connect();
  c->send("GET /chunked HTTP/1.1\r\nHost: test.local\r\n\r\n");
  Response r = c->read();
  EXPECT_TRUE(r.has("Transfer-Encoding: chunked"));
  EXPECT_EQ(r.body, "hello world");
  auto c10 = connect();
  c10->send("GET /chunked HTTP/1.0\r\nHost: test.local\r\n\r\n");
  Response r10 = c10->read();
  EXPECT_EQ(r10.status, 200);
  EXPECT_FALSE(r10.has("chunked"));
  EXPECT_TRUE(r10.has("Connection: close"));
  EXPECT_EQ(r10.body, "hello world");
}

TEST_F(Http1ProxyTest, BodyOverMaxBodySizeIs413AndCloses) {
  auto c = connect();
  c->send("POST /x HTTP/1.1\r\nHost: test.local\r\nContent-Length: 5000\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.has("Connection: close"));
  EXPECT_TRUE(r.has("Content-Type: text/plain"));
  EXPECT_TRUE(c->at_eof());
  // A chunked body is caught while it is read.
  auto c2 = connect();
  std::string big(1500, 'x');
  c2->send("POST /x HTTP/1.1\r\nHost: test.local\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n" + big + "\r\n0\r\n\r\n");
  EXPECT_EQ(c2->read().status, 413);
  EXPECT_TRUE(worker_->requests().empty());  // nothing was forwarded
}

TEST_F(Http1ProxyTest, HugeHeadIs431) {
  auto c = connect();
  c->send("GET / HTTP/1.1\r\nHost: test.local\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 431);
  EXPECT_TRUE(r.has("Connection: close"));
  EXPECT_TRUE(c->at_eof());
}

TEST_F(Http1ProxyTest, MalformedRequestIs400AndCloses) {
  auto c = connect();
  c->send("GET / HTTP/1.1\nHost: test.local\n\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(r.has("Connection: close"));
  EXPECT_TRUE(c->at_eof());
  EXPECT_TRUE(worker_->requests().empty());
}

TEST_F(Http1ProxyTest, UnroutedHostIs404AndKeepsTheConnection) {
  auto c = connect();
  c->send("GET / HTTP/1.1\r\nHost: elsewhere\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 404);
  EXPECT_FALSE(r.has("Connection: close"));
  c->send("GET /after HTTP/1.1\r\nHost: test.local\r\n\r\n");
  EXPECT_EQ(c->read().body, "GET /after 0\n");
}

TEST_F(Http1ProxyTest, Expect100ContinueIsAnsweredBeforeTheBody) {
  auto c = connect();
  c->send("PUT /e HTTP/1.1\r\nHost: test.local\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  Response cont = c->read();
  EXPECT_EQ(cont.status, 100);
  c->send("data");
  Response r = c->read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "PUT /e 4\n");
  auto reqs = worker_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].find("Expect"), std::string::npos);
}

TEST_F(Http1ProxyTest, WorkerClosingWithoutResponseIs502) {
  auto c = connect();
  c->send("POST /close HTTP/1.1\r\nHost: test.local\r\nContent-Length: 0\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 502);
  c->send("GET /ok HTTP/1.1\r\nHost: test.local\r\n\r\n");
  EXPECT_EQ(c->read().body, "GET /ok 0\n");
}

TEST_F(Http1ProxyTest, SlowWorkerIs504AndReportedHung) {
  auto c = connect();
  auto t0 = std::chrono::steady_clock::now();
  c->send("GET /hang HTTP/1.1\r\nHost: test.local\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 504);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);
  std::lock_guard<std::mutex> g(mu_);
  ASSERT_EQ(hung_.size(), 1u);
  EXPECT_EQ(hung_[0].substr(0, 6), "app#0 ");
}

TEST_F(Http1ProxyTest, NoWorkersAnswers503AfterTheQueueTimeout) {
  dispatchers_["app"]->update_slots({});
  auto c = connect();
  c->send("GET / HTTP/1.1\r\nHost: test.local\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(r.has("Retry-After: 1"));
}

TEST_F(Http1ProxyTest, HeaderDeadlineCannotBeExtendedByTrickling) {
  auto c = connect();
  auto t0 = std::chrono::steady_clock::now();
  // One byte every 300ms: a slowloris. The 2s deadline from the first byte still applies.
  std::string req = "GET / HTTP/1.1\r\nHost: test.local\r\nX-A: aaaaaaaaaaaaaaaaaaaaa";
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    for (char ch : req) {
      if (done) break;
      if (::send(c->fd(), &ch, 1, MSG_NOSIGNAL) != 1) break;  // closed by the proxy
      std::this_thread::sleep_for(150ms);
    }
  });
  Response r = c->read();
  done = true;
  trickle.join();
  EXPECT_EQ(r.status, 408);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 1900ms);
  EXPECT_LT(took, 3500ms);
}

TEST_F(Http1ProxyTest, IdleKeepAliveConnectionParksAndWakesWithItsNextRequest) {
  auto c = connect();
  c->send("GET /a HTTP/1.1\r\nHost: test.local\r\n\r\n");
  EXPECT_EQ(c->read().body, "GET /a 0\n");
  // Idle: the connection waits without a session; the session is kept for reuse.
  ASSERT_TRUE(wait_parked(1));
  EXPECT_EQ(on_loop([this] { return loop_->spare_session_count(); }), 1u);
  c->send("POST /b HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3\r\n\r\nxyz");
  EXPECT_EQ(c->read().body, "POST /b 3\n");
  ASSERT_TRUE(wait_parked(1));
  // A request that arrives in pieces wakes it too.
  c->send("GET /c HTTP/1.1\r\nHo");
  std::this_thread::sleep_for(50ms);
  c->send("st: test.local\r\n\r\n");
  EXPECT_EQ(c->read().body, "GET /c 0\n");
  EXPECT_EQ(worker_->connections(), 1);
}

TEST_F(Http1ProxyTest, ConnectionsOneAfterAnotherShareOneSession) {
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(connect());
    clients.back()->send("GET /n HTTP/1.1\r\nHost: test.local\r\n\r\n");
    ASSERT_EQ(clients.back()->read().body, "GET /n 0\n");
  }
  ASSERT_TRUE(wait_parked(20));
  EXPECT_EQ(on_loop([this] { return loop_->spare_session_count(); }), 1u);
  // Every parked connection is still served, whichever order they speak in.
  for (int i = 19; i >= 0; --i) {
    clients[static_cast<size_t>(i)]->send("GET /again HTTP/1.1\r\nHost: test.local\r\n\r\n");
    EXPECT_EQ(clients[static_cast<size_t>(i)]->read().body, "GET /again 0\n");
  }
}

TEST_F(Http1ProxyTest, ParkedConnectionClosesOnDrain) {
  auto c = connect();
  c->send("GET /a HTTP/1.1\r\nHost: test.local\r\n\r\n");
  EXPECT_EQ(c->read().status, 200);
  ASSERT_TRUE(wait_parked(1));
  loop_->begin_drain();
  EXPECT_TRUE(c->at_eof());
}

TEST_F(Http1ProxyTest, AnAnswerBeforeTheBodyIsReadLingersUntilTheClientCloses) {
  auto c = connect();
  c->send("POST /up HTTP/1.1\r\nHost: test.local\r\nContent-Length: 100000\r\n\r\n");
  Response r = c->read();
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(c->at_eof());  // the proxy half-closed after its answer
  // It still reads: the rest of the body goes in without a reset, however much there is.
  std::string chunk(16 * 1024, 'b');
  for (int i = 0; i < 64; ++i) c->send(chunk);
  EXPECT_EQ(on_loop([this] { return loop_->connection_count(); }), 1u);
  ::shutdown(c->fd(), SHUT_WR);
  for (int i = 0; i < 200 && on_loop([this] { return loop_->connection_count(); }) != 0; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(on_loop([this] { return loop_->connection_count(); }), 0u) << "closed once the client closed";
  EXPECT_TRUE(worker_->requests().empty());
}

class Http1ProxyShortKeepAliveTest : public Http1ProxyTest {
 protected:
  void SetUp() override {
    keepalive_ = 300ms;
    Http1ProxyTest::SetUp();
  }
};

TEST_F(Http1ProxyShortKeepAliveTest, ParkedConnectionClosesAfterTheKeepAliveTimeout) {
  auto c = connect();
  c->send("GET /a HTTP/1.1\r\nHost: test.local\r\n\r\n");
  EXPECT_EQ(c->read().status, 200);
  ASSERT_TRUE(wait_parked(1));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c->at_eof());
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_EQ(on_loop([this] { return loop_->connection_count(); }), 0u);
}

}  // namespace
}  // namespace corral::proxy
