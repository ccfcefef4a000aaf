#include "proxy/compress/encoder.h"

#include <brotli/decode.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

namespace corral::proxy::compress {
namespace {

struct Collect : Output {
  std::string data;
  std::vector<size_t> pieces;
  void write(std::string_view p) override {
    data.append(p);
    pieces.push_back(p.size());
  }
};

std::string gunzip(std::string_view in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
  }
  inflateEnd(&z);
  return out;
}

std::string unbrotli(std::string_view in) {
  BrotliDecoderState* d = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  std::string out;
  size_t avail_in = in.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
  for (;;) {
    uint8_t buf[65536];
    size_t avail_out = sizeof buf;
    uint8_t* next_out = buf;
    auto rc = BrotliDecoderDecompressStream(d, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - avail_out);
    if (rc != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) break;
  }
  BrotliDecoderDestroyInstance(d);
  return out;
}

std::string decode(Coding c, std::string_view in) { return c == Coding::Gzip ? gunzip(in) : unbrotli(in); }

// JSON-like text with some randomness, so it compresses but not to nothing.
std::string sample(size_t size, unsigned seed = 1) {
  std::mt19937 rng(seed);
  const char* words[] = {"alpha", "beta", "gamma", "order", "shipped", "pending", "price", "name", "id"};
  std::string s = "[";
  while (s.size() < size) {
    s += "{\"" + std::string(words[rng() % 9]) + "\": " + std::to_string(rng() % 100000) + ", \"" + words[rng() % 9] +
         "\": \"" + words[rng() % 9] + "\"},";
  }
  s.resize(size);
  return s;
}

class EncoderTest : public ::testing::TestWithParam<Coding> {};

TEST_P(EncoderTest, RoundTripInPieces) {
  const std::string body = sample(300 << 10);
  Encoder e;
  ASSERT_TRUE(e.start(GetParam(), GetParam() == Coding::Gzip ? 5 : 4));
  Collect out;
  for (size_t off = 0; off < body.size(); off += 7000) ASSERT_TRUE(e.write(std::string_view(body).substr(off, 7000), out));
  ASSERT_TRUE(e.finish(out));
  EXPECT_FALSE(e.active());  // finish gives the state back
  EXPECT_EQ(decode(GetParam(), out.data), body);
  EXPECT_LT(out.data.size(), body.size() / 3);
  // Output comes in bounded pieces.
  for (size_t n : out.pieces) EXPECT_LE(n, kOutputChunk);
  EXPECT_EQ(e.bytes_in(), body.size());
  EXPECT_EQ(e.bytes_out(), out.data.size());
}

TEST_P(EncoderTest, IncompressibleInputStillBoundedPieces) {
  std::string body(200 << 10, '\0');
  std::mt19937 rng(7);
  for (auto& c : body) c = static_cast<char>(rng());
  Encoder e;
  ASSERT_TRUE(e.start(GetParam(), 1));
  Collect out;
  ASSERT_TRUE(e.write(body, out));
  ASSERT_TRUE(e.finish(out));
  EXPECT_EQ(decode(GetParam(), out.data), body);
  EXPECT_GT(out.pieces.size(), 10u);
  for (size_t n : out.pieces) EXPECT_LE(n, kOutputChunk);
}

TEST_P(EncoderTest, FlushMakesEverySoFarDecodable) {
  Encoder e;
  ASSERT_TRUE(e.start(GetParam(), 5));
  Collect out;
  ASSERT_TRUE(e.write("data: first event\n\n", out));
  ASSERT_TRUE(e.flush(out));
  ASSERT_FALSE(out.data.empty());
  // A decoder given only what is out so far yields the whole first event.
  EXPECT_EQ(decode(GetParam(), out.data), "data: first event\n\n");
  size_t after_first = out.data.size();
  ASSERT_TRUE(e.flush(out));  // nothing new: nothing written
  EXPECT_EQ(out.data.size(), after_first);
  ASSERT_TRUE(e.write("data: second\n\n", out));
  ASSERT_TRUE(e.flush(out));
  EXPECT_EQ(decode(GetParam(), out.data), "data: first event\n\ndata: second\n\n");
  ASSERT_TRUE(e.finish(out));
  EXPECT_EQ(decode(GetParam(), out.data), "data: first event\n\ndata: second\n\n");
}

TEST_P(EncoderTest, EmptyBody) {
  Encoder e;
  ASSERT_TRUE(e.start(GetParam(), 3));
  Collect out;
  ASSERT_TRUE(e.finish(out));
  EXPECT_FALSE(out.data.empty());
  EXPECT_EQ(decode(GetParam(), out.data), "");
}

TEST_P(EncoderTest, ReusedStateStartsClean) {
  Encoder e;
  for (int round = 0; round < 3; ++round) {
    const std::string body = sample(40 << 10, static_cast<unsigned>(round));
    ASSERT_TRUE(e.start(GetParam(), round + 1));  // another level each time
    Collect out;
    ASSERT_TRUE(e.write(body, out));
    ASSERT_TRUE(e.finish(out));
    EXPECT_EQ(decode(GetParam(), out.data), body) << round;
  }
  // An abandoned response (client gone) gives its state back as well.
  ASSERT_TRUE(e.start(GetParam(), 5));
  Collect out;
  ASSERT_TRUE(e.write(sample(10000), out));
  e.release();
  EXPECT_FALSE(e.active());
}

INSTANTIATE_TEST_SUITE_P(Codings, EncoderTest, ::testing::Values(Coding::Gzip, Coding::Br),
                         [](const ::testing::TestParamInfo<Coding>& p) { return p.param == Coding::Gzip ? "Gzip" : "Br"; });

TEST(EncoderPool, GzipStateIsReused) {
  std::thread([] {
    {
      Encoder a;
      ASSERT_TRUE(a.start(Coding::Gzip, 5));
      Collect out;
      ASSERT_TRUE(a.write("x", out));
      ASSERT_TRUE(a.finish(out));
    }
    PoolStats s = pool_stats();
    EXPECT_EQ(s.gzip_created, 1u);
    EXPECT_EQ(s.gzip_idle, 1u);
    for (int i = 0; i < 50; ++i) {
      Encoder b;
      ASSERT_TRUE(b.start(Coding::Gzip, 1 + i % 9));
      Collect out;
      ASSERT_TRUE(b.write(sample(2000), out));
      ASSERT_TRUE(b.finish(out));
    }
    EXPECT_EQ(pool_stats().gzip_created, 1u);  // one response at a time: one z_stream
  }).join();
}

TEST(EncoderPool, BrotliIsBoundedPerThreadAndItsMemoryCached) {
  std::thread([] {
    std::vector<std::unique_ptr<Encoder>> live;
    for (int i = 0; i < kMaxBrotliPerThread; ++i) {
      live.push_back(std::make_unique<Encoder>());
      ASSERT_TRUE(live.back()->start(Coding::Br, 4));
    }
    Encoder over;
    EXPECT_FALSE(over.start(Coding::Br, 4));  // the caller falls back to gzip or identity
    EXPECT_TRUE(over.start(Coding::Gzip, 4));
    EXPECT_EQ(pool_stats().brotli_live, kMaxBrotliPerThread);
    live.clear();
    EXPECT_EQ(pool_stats().brotli_live, 0);
    // One brotli response's footprint, measured: at quality 4 with lgwin 16 it stays under 2 MiB,
    // and the next encoder takes its blocks from the cache (nothing new allocated).
    Encoder e;
    ASSERT_TRUE(e.start(Coding::Br, 4));
    Collect out;
    ASSERT_TRUE(e.write(sample(200 << 10), out));
    size_t held = pool_stats().brotli_allocated_bytes;
    EXPECT_GT(held, 64u << 10);
    EXPECT_LT(held, 2u << 20);
    ASSERT_TRUE(e.finish(out));
    EXPECT_EQ(pool_stats().brotli_allocated_bytes, 0u);
    EXPECT_GT(pool_stats().brotli_cached_bytes, 0u);
  }).join();
}

}  // namespace
}  // namespace corral::proxy::compress
