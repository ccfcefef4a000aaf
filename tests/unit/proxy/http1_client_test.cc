// Http1Client against a scripted worker on a real Unix socket that writes its responses in
// pieces (separate reads on our side): a response that comes whole is parsed from the
// loop's shared read buffer, a partial one carries over into the client's own buffer; both
// must give the same events. Plus the shared buffer's borrow rules.
#include "proxy/upstream/http1_client.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/net/socket.h"

namespace corral::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

/// A worker in a thread: for the Nth request on its (kept-alive) connections, writes
/// responses[N] piece by piece, 30 ms apart. An empty responses[N] closes the connection
/// after reading the request, without answering (a worker that drops a kept connection).
class PieceWorker {
 public:
  PieceWorker(const std::string& path, std::vector<std::vector<std::string>> responses)
      : responses_(std::move(responses)) {
    auto fd = net::listen_unix(path);
    EXPECT_TRUE(fd.has_value());
    fd_ = std::move(*fd);
    int fl = ::fcntl(fd_.get(), F_GETFL);
    ::fcntl(fd_.get(), F_SETFL, fl & ~O_NONBLOCK);
    thread_ = std::thread([this] { run(); });
  }
  ~PieceWorker() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    if (int c = conn_.load(); c >= 0) ::shutdown(c, SHUT_RDWR);
    thread_.join();
  }
  int accepted() const { return accepted_; }

 private:
  void run() {
    size_t next = 0;
    while (true) {
      int c = ::accept(fd_.get(), nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      conn_ = c;
      std::string buf;
      while (next < responses_.size()) {
        char tmp[4096];
        while (buf.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = ::read(c, tmp, sizeof tmp);
          if (n <= 0) goto done;
          buf.append(tmp, static_cast<size_t>(n));
        }
        buf.erase(0, buf.find("\r\n\r\n") + 4);
        if (responses_[next].empty()) {
          ++next;
          goto done;
        }
        for (const std::string& piece : responses_[next]) {
          (void)!::write(c, piece.data(), piece.size());
          std::this_thread::sleep_for(30ms);
        }
        ++next;
      }
      // Keep the connection open (pooled on the other side) until the test ends.
      {
        char tmp[64];
        while (::read(c, tmp, sizeof tmp) > 0) {
        }
      }
    done:
      conn_ = -1;
      ::close(c);
    }
  }
  UniqueFd fd_;
  std::vector<std::vector<std::string>> responses_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> conn_{-1};
};

class Recorder : public UpstreamHandler {
 public:
  explicit Recorder(ev::Loop& loop, int* pending) : loop_(loop), pending_(pending) {}
  void on_upstream_connect_failed(int) noexcept override { done("connect failed"); }
  void on_upstream_head(const http1::ResponseHead& h) noexcept override {
    status = h.status;
    for (auto& x : h.headers) headers[std::string(x.name)] = x.value;
  }
  void on_upstream_body(std::string_view d) noexcept override { body += d; }
  void on_upstream_read_done() noexcept override {}
  void on_upstream_complete() noexcept override { done(""); }
  void on_upstream_error(const char* why) noexcept override { done(why); }
  void done(std::string why) {
    error = std::move(why);
    finished = true;
    if (--*pending_ == 0) loop_.break_loop();
  }
  void clear() {
    status = 0;
    headers.clear();
    body.clear();
    error.clear();
    finished = false;
  }

  ev::Loop& loop_;
  int* pending_;
  int status = 0;
  std::map<std::string, std::string> headers;
  std::string body, error;
  bool finished = false;
};

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: w\r\n\r\n";

class Http1ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/corral-h1c-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  UpstreamRequest request(const std::string& sock) {
    UpstreamRequest r;
    r.path = sock;
    r.generation = 1;
    r.method = "GET";
    r.idempotent = idempotent_;
    r.head = kGet;
    return r;
  }
  // Starts every (client, socket) pair, then runs the loop until all have finished (or 3 s).
  void run(std::vector<std::pair<Http1Client*, std::string>> reqs) {
    pending_ = static_cast<int>(reqs.size());
    ev::Timer guard(loop_, [this] { loop_.break_loop(); });
    guard.arm(std::chrono::milliseconds(3000));
    for (auto& [c, sock] : reqs) c->start(request(sock));
    if (pending_ > 0) loop_.run();
  }

  std::string dir_;
  ev::Loop loop_;
  UpstreamPool pool_{loop_};
  int pending_ = 0;
  bool idempotent_ = true;
};

TEST_F(Http1ClientTest, AKeptConnectionDroppedUnderARequestIsRetriedOnceOnAFreshOneWhenIdempotent) {
  std::string sock = dir_ + "/w.sock";
  PieceWorker w(sock, {
                          {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1"},
                          {},  // drops the kept connection under the next request
                          {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr2"},
                          {},  // and again, under a request that must not be resent
                      });
  Recorder rec(loop_, &pending_);
  Http1Client client(pool_, rec);
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_EQ(rec.body, "r1");

  rec.clear();
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_EQ(rec.error, "");
  EXPECT_EQ(rec.body, "r2") << "resent on a fresh connection";
  EXPECT_EQ(w.accepted(), 2);

  rec.clear();
  idempotent_ = false;
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_NE(rec.error, "") << "a request that is not idempotent is never resent";
  EXPECT_EQ(w.accepted(), 2);
}

TEST_F(Http1ClientTest, ResponseSplitAcrossReadsGivesTheSameEventsAsAWholeOne) {
  std::string sock = dir_ + "/w.sock";
  PieceWorker w(sock, {
                          {"HTTP/1.1 200 OK\r\nContent-Le", "ngth: 10\r\nX-A: b\r\n\r\nhel", "lowor", "ld"},
                          {"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: c\r\n\r\nok"},
                          {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r", "\nhello\r\n1",
                           "0\r\n0123456789abcdef\r\n0\r\n\r\n"},
                      });
  Recorder rec(loop_, &pending_);
  Http1Client client(pool_, rec);
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_EQ(rec.error, "");
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.headers["X-A"], "b");
  EXPECT_EQ(rec.body, "helloworld");

  rec.clear();
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_EQ(rec.error, "");
  EXPECT_EQ(rec.status, 201);
  EXPECT_EQ(rec.headers["X-A"], "c");
  EXPECT_EQ(rec.body, "ok");

  rec.clear();
  run({{&client, sock}});
  ASSERT_TRUE(rec.finished);
  EXPECT_EQ(rec.error, "");
  EXPECT_EQ(rec.body, "hello0123456789abcdef");
  EXPECT_EQ(w.accepted(), 1) << "the connection is reused after split and whole responses";
}

TEST_F(Http1ClientTest, ClientsOfOneLoopInterleavingPartialResponsesKeepTheirOwnBytes) {
  std::string a = dir_ + "/a.sock", b = dir_ + "/b.sock";
  PieceWorker wa(a, {{"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\naa", "aaaa"}});
  PieceWorker wb(b, {{"HTTP/1.1 200 OK\r\nContent-Len", "gth: 6\r\n\r\nbbbbbb"}});
  Recorder ra(loop_, &pending_), rb(loop_, &pending_);
  Http1Client ca(pool_, ra), cb(pool_, rb);
  run({{&ca, a}, {&cb, b}});
  ASSERT_TRUE(ra.finished && rb.finished);
  EXPECT_EQ(ra.error, "");
  EXPECT_EQ(rb.error, "");
  EXPECT_EQ(ra.body, "aaaaaa");
  EXPECT_EQ(rb.body, "bbbbbb");
}

TEST(UpstreamPoolTest, TheSharedReadBufferHasOneBorrowerAtATime) {
  ev::Loop loop;
  UpstreamPool pool(loop);
  char* p = pool.borrow_scratch();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(pool.borrow_scratch(), nullptr) << "a second borrower takes its own buffer";
  pool.return_scratch();
  EXPECT_EQ(pool.borrow_scratch(), p) << "kept for the loop's life";
  pool.return_scratch();
}

}  // namespace
}  // namespace corral::proxy
