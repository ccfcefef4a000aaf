// The control API over a real Unix socket and a real loop; the client runs on a thread.
#include "supervisor/control_api.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/net/socket.h"

namespace corral::supervisor {
namespace {

std::string roundtrip(const std::string& path, const std::string& request) {
  auto fd = net::connect_unix_blocking(path);
  if (!fd) return "connect failed";
  if (!net::write_all(fd->get(), request)) return "write failed";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd->get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

class ControlApiTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = "/tmp/corral-ctl-" + std::to_string(::getpid()) + ".sock"; }
  // Runs the loop while `client` runs on a thread; returns the client's result.
  std::string run_client(const std::string& request) {
    std::string result;
    std::thread t([&] {
      result = roundtrip(path_, request);
      loop_.break_loop();
    });
    loop_.run();
    t.join();
    return result;
  }
  ev::Loop loop_;
  std::string path_;
  std::string seen_method_, seen_path_, seen_body_;
  ControlApi api_{loop_, [this](const ControlApi::Request& r) {
                    seen_method_ = r.method;
                    seen_path_ = r.path;
                    seen_body_ = r.body;
                    if (r.path == "/status") return ControlApi::Response{200, R"({"pid":1})"};
                    return ControlApi::Response{404, R"({"error":"not found"})"};
                  }};
};

TEST_F(ControlApiTest, AnswersOneRequestPerConnection) {
  ASSERT_TRUE(api_.listen(path_));
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string resp = run_client("GET /status?x=1 HTTP/1.1\r\nHost: corral\r\n\r\n");
  EXPECT_EQ(resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{\"pid\":1}");
  EXPECT_EQ(seen_method_, "GET");
  EXPECT_EQ(seen_path_, "/status");
}

TEST_F(ControlApiTest, ReadsTheBodyAndRoutesUnknownPathsToTheHandler) {
  ASSERT_TRUE(api_.listen(path_));
  std::string resp = run_client("POST /nope HTTP/1.1\r\nHost: corral\r\nContent-Length: 4\r\n\r\nbody");
  EXPECT_EQ(resp.substr(0, 22), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(seen_body_, "body");
}

TEST_F(ControlApiTest, RejectsMalformedRequests) {
  ASSERT_TRUE(api_.listen(path_));
  std::string resp = run_client("GET /status HTTP/1.1\nHost: x\n\n");
  EXPECT_EQ(resp.substr(0, 12), "HTTP/1.1 400");
  EXPECT_TRUE(seen_path_.empty());
}

TEST_F(ControlApiTest, CloseRemovesTheSocketFile) {
  ASSERT_TRUE(api_.listen(path_));
  api_.close();
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
}

// Another socket took the path (another supervisor on the same runtime_dir): neither
// rebind() nor close() removes it.
TEST_F(ControlApiTest, ASocketThatTookThePathIsLeftAlone) {
  ASSERT_TRUE(api_.listen(path_));
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  auto other = net::listen_unix(path_, 4, 0600);
  ASSERT_TRUE(other);
  struct stat before {};
  ASSERT_EQ(::stat(path_.c_str(), &before), 0);
  EXPECT_FALSE(api_.intact());
  EXPECT_FALSE(api_.rebind());
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0) << "rebind removed a socket it did not bind";
  EXPECT_EQ(st.st_ino, before.st_ino);
  api_.close();
  ASSERT_EQ(::stat(path_.c_str(), &st), 0) << "close removed a socket it did not bind";
  EXPECT_EQ(st.st_ino, before.st_ino);
  ::unlink(path_.c_str());
}

// Its own file gone (runtime_dir removed): bound again.
TEST_F(ControlApiTest, RebindsWhenItsFileIsGone) {
  ASSERT_TRUE(api_.listen(path_));
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  EXPECT_FALSE(api_.intact());
  ASSERT_TRUE(api_.rebind());
  EXPECT_TRUE(api_.intact());
  std::string resp = run_client("GET /status HTTP/1.1\r\nHost: corral\r\n\r\n");
  EXPECT_EQ(resp.substr(0, 15), "HTTP/1.1 200 OK");
  api_.close();
  EXPECT_NE(::access(path_.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace corral::supervisor
