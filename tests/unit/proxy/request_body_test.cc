// RequestBody: memory up to client_body_buffer_size, then an unlinked temp file read back
// through peek(); max_size; streaming with release() and the reader/writer callbacks; close().
#include "proxy/request_body.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace corral::proxy {
namespace {

namespace fs = std::filesystem;

class RequestBodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/corral-body-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  RequestBody::Settings settings(uint64_t memory, uint64_t max = 1 << 20, bool streaming = false) {
    RequestBody::Settings s;
    s.max_size = max;
    s.memory = memory;
    s.temp_dir = dir_;
    s.streaming = streaming;
    s.counters = &counters_;
    return s;
  }
  // Everything peek() gives from offset 0, from memory or the file.
  static std::string read_all(const RequestBody& b) {
    std::string out;
    for (;;) {
      RequestBody::Piece p = b.peek(out.size(), 7);  // small steps cross piece edges
      if (p.len == 0) return out;
      if (p.fd >= 0) {
        std::string buf(p.len, '\0');
        EXPECT_EQ(::pread(p.fd, buf.data(), p.len, static_cast<off_t>(p.offset)), static_cast<ssize_t>(p.len));
        out += buf;
      } else {
        out.append(p.data, p.len);
      }
    }
  }
  static int open_fds() {
    int n = 0;
    for (auto& e : fs::directory_iterator("/proc/self/fd")) (void)e, ++n;
    return n;
  }
  std::string dir_;
  metrics::LoopCounters counters_;
};

TEST_F(RequestBodyTest, StaysInMemoryUpToTheBufferSize) {
  RequestBody b;
  b.reset(settings(16));
  EXPECT_EQ(b.append("0123456789"), RequestBody::Status::Ok);
  EXPECT_EQ(b.append("abcdef"), RequestBody::Status::Ok);  // exactly 16
  EXPECT_FALSE(b.spilled());
  EXPECT_EQ(b.memory_held(), 16u);
  EXPECT_EQ(read_all(b), "0123456789abcdef");
  EXPECT_EQ(counters_.bodies_spilled.get(), 0u);
}

TEST_F(RequestBodyTest, SpillsToAnUnlinkedFileAndClosesIt) {
  int before = open_fds();
  RequestBody b;
  b.reset(settings(16));
  ASSERT_EQ(b.append("0123456789"), RequestBody::Status::Ok);
  ASSERT_EQ(b.append("abcdefg"), RequestBody::Status::Ok);  // 17 > 16: to the file
  ASSERT_EQ(b.append("XYZ"), RequestBody::Status::Ok);
  EXPECT_TRUE(b.spilled());
  EXPECT_EQ(b.memory_held(), 0u);
  EXPECT_EQ(b.size(), 20u);
  EXPECT_EQ(read_all(b), "0123456789abcdefgXYZ");
  EXPECT_EQ(open_fds(), before + 1);
  EXPECT_TRUE(fs::is_empty(dir_)) << "the temp file must have no name";
  EXPECT_EQ(counters_.bodies_spilled.get(), 1u);
  EXPECT_EQ(counters_.body_spilled_bytes.get(), 20u);
  b.close();
  EXPECT_EQ(open_fds(), before);
  EXPECT_EQ(read_all(b), "");
  // Reused for the next request: memory again.
  b.reset(settings(16));
  ASSERT_EQ(b.append("small"), RequestBody::Status::Ok);
  EXPECT_FALSE(b.spilled());
  EXPECT_EQ(read_all(b), "small");
}

TEST_F(RequestBodyTest, MaxSizeAndTempFileErrors) {
  RequestBody b;
  b.reset(settings(4, 10));
  EXPECT_EQ(b.append("0123456789"), RequestBody::Status::Ok);
  EXPECT_EQ(b.append("x"), RequestBody::Status::TooLarge);
  EXPECT_EQ(b.size(), 10u);
  RequestBody::Settings s = settings(4);
  std::string missing = dir_ + "/missing";
  s.temp_dir = missing;
  b.reset(s);
  EXPECT_EQ(b.append("0123"), RequestBody::Status::Ok);
  EXPECT_EQ(b.append("4"), RequestBody::Status::TempFileError);
  EXPECT_EQ(b.error(), ENOENT);
  EXPECT_EQ(counters_.body_temp_errors.get(), 1u);
  // A closed body (the request was answered) drops what still arrives, past max_size too:
  // those bytes are discarded, not a body too large.
  b.reset(settings(4, 10, /*streaming=*/true));
  EXPECT_EQ(b.append("0123456789"), RequestBody::Status::Ok);
  b.close();
  EXPECT_EQ(b.append("abcdef"), RequestBody::Status::Ok);
  EXPECT_EQ(b.memory_held(), 0u);
}

struct Recorder : BodyReader, BodyWriter {
  int more = 0, drained = 0;
  void on_body_more() noexcept override { ++more; }
  void on_body_drained() noexcept override { ++drained; }
};

TEST_F(RequestBodyTest, StreamingHandsBytesOverAndReleasesThem) {
  RequestBody b;
  Recorder r;
  b.reset(settings(8, 1 << 20, /*streaming=*/true));
  b.set_reader(&r);
  b.set_writer(&r);
  ASSERT_EQ(b.append("abcdef"), RequestBody::Status::Ok);
  EXPECT_EQ(r.more, 1);
  EXPECT_FALSE(b.full());
  ASSERT_EQ(b.append("ghijkl"), RequestBody::Status::Ok);  // never spills: backpressure instead
  EXPECT_FALSE(b.spilled());
  EXPECT_TRUE(b.full());
  EXPECT_TRUE(b.replayable());
  RequestBody::Piece p = b.peek(0, 100);
  ASSERT_EQ(std::string(p.data, p.len), "abcdefghijkl");
  b.release(5);
  EXPECT_EQ(r.drained, 1);
  EXPECT_FALSE(b.replayable());
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.released(), 5u);
  p = b.peek(5, 100);
  EXPECT_EQ(std::string(p.data, p.len), "fghijkl");
  EXPECT_FALSE(b.complete());
  b.finish();
  EXPECT_TRUE(b.complete());
  EXPECT_EQ(r.more, 3);
  // After close(): bytes still arriving are counted and dropped.
  b.close();
  EXPECT_EQ(b.append("more"), RequestBody::Status::Ok);
  EXPECT_EQ(b.memory_held(), 0u);
  EXPECT_EQ(b.peek(16, 10).len, 0u);
}

}  // namespace
}  // namespace corral::proxy
