// BodyDecoder: every framing, fed whole, byte by byte and in random splits.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "common/http1/parser.h"

namespace corral::http1 {
namespace {

struct Decoded {
  std::string data;
  size_t consumed = 0;
  bool done = false;
  bool error = false;
  int status = 0;
  std::string reason;
};

/// Decodes `in` delivered in pieces of the sizes produced by `next_piece`.
template <typename NextPiece>
Decoded decode(BodyKind kind, uint64_t len, std::string_view in, NextPiece next_piece) {
  BodyDecoder d;
  d.start(kind, len);
  Decoded out;
  size_t avail = 0;
  while (!d.done()) {
    if (out.consumed == avail) {
      if (avail == in.size()) break;
      avail = std::min(in.size(), avail + next_piece());
    }
    BodyDecoder::Step st = d.step(in.substr(out.consumed, avail - out.consumed));
    if (st.error) {
      out.error = true;
      out.status = st.why.status;
      out.reason = st.why.reason;
      return out;
    }
    out.data.append(st.data);
    out.consumed += st.consumed;
  }
  out.done = d.done();
  return out;
}

Decoded whole(BodyKind k, uint64_t len, std::string_view in) {
  return decode(k, len, in, [&] { return in.size(); });
}

void expect_same_in_all_splits(BodyKind k, uint64_t len, std::string_view in) {
  Decoded w = whole(k, len, in);
  Decoded b = decode(k, len, in, [] { return size_t{1}; });
  EXPECT_EQ(b.data, w.data);
  if (!w.error) {  // on error, where it stopped depends on the split
    EXPECT_EQ(b.consumed, w.consumed);
  }
  EXPECT_EQ(b.done, w.done);
  EXPECT_EQ(b.error, w.error);
  EXPECT_EQ(b.status, w.status);
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    Decoded r = decode(k, len, in, [&] { return size_t{1} + rng() % 9; });
    EXPECT_EQ(r.data, w.data) << seed;
    if (!w.error) {
      EXPECT_EQ(r.consumed, w.consumed) << seed;
    }
    EXPECT_EQ(r.error, w.error) << seed;
    EXPECT_EQ(r.reason, w.reason) << seed;
  }
}

TEST(Http1Body, ContentLengthStopsAtLength) {
  Decoded d = whole(BodyKind::ContentLength, 5, "helloNEXT");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "hello");
  EXPECT_EQ(d.consumed, 5u);
  expect_same_in_all_splits(BodyKind::ContentLength, 5, "helloNEXT");
}

TEST(Http1Body, ZeroLengthAndNoneAreDoneAtOnce) {
  BodyDecoder d;
  d.start(BodyKind::ContentLength, 0);
  EXPECT_TRUE(d.done());
  d.start(BodyKind::None);
  EXPECT_TRUE(d.done());
  BodyDecoder::Step st = d.step("GET / HTTP/1.1");
  EXPECT_TRUE(st.done);
  EXPECT_EQ(st.consumed, 0u);
}

TEST(Http1Body, ContentLengthTruncatedByEof) {
  BodyDecoder d;
  d.start(BodyKind::ContentLength, 10);
  BodyDecoder::Step st = d.step("abc");
  EXPECT_EQ(st.data, "abc");
  EXPECT_EQ(d.remaining(), 7u);
  EXPECT_FALSE(d.on_eof());
}

TEST(Http1Body, UntilCloseEndsAtEof) {
  BodyDecoder d;
  d.start(BodyKind::UntilClose);
  BodyDecoder::Step st = d.step("anything\r\n0\r\n");
  EXPECT_EQ(st.data, "anything\r\n0\r\n");
  EXPECT_FALSE(st.done);
  EXPECT_TRUE(d.on_eof());
  EXPECT_TRUE(d.done());
}

TEST(Http1Body, ChunkedWithExtensionsAndTrailers) {
  const std::string in =
      "4;a=b;c=\"q\\\"x\"\r\nWiki\r\n5;e\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX:\r\n\r\nNEXT";
  Decoded d = whole(BodyKind::Chunked, 0, in);
  ASSERT_FALSE(d.error) << d.reason;
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.data, "Wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(d.consumed, in.size() - 4);
  expect_same_in_all_splits(BodyKind::Chunked, 0, in);
}

TEST(Http1Body, ChunkedTruncatedByEof) {
  BodyDecoder d;
  d.start(BodyKind::Chunked);
  (void)d.step("5\r\nhel");
  EXPECT_FALSE(d.on_eof());
}

TEST(Http1Body, ChunkedRejections) {
  struct Case {
    const char* in;
    const char* reason;
  } cases[] = {
      {"5\r\nhelloX\r\n0\r\n\r\n", "chunk data not followed by CRLF"},
      {"5\r\nhello\rX0\r\n\r\n", "chunk data not followed by CRLF"},
      {"5\nhello\r\n0\r\n\r\n", "invalid character after chunk size"},
      {"5\r\rhello\r\n0\r\n\r\n", "bare CR in chunk line"},
      {"x\r\n", "invalid chunk size"},
      {"\r\n", "invalid chunk size"},
      {"00000000000000001\r\na\r\n0\r\n\r\n", "chunk size too large"},
      {"ffffffffffffffff\r\n", "chunk size too large"},
      {"8000000000000000\r\n", "chunk size too large"},
      {"5;\r\nhello\r\n", "invalid chunk extension"},
      {"5;a=\"x\r\nhello\r\n", "invalid chunk extension"},
      {"5;a=\"x\"y\r\nhello\r\n", "invalid chunk extension"},
      {"5;a b\r\nhello\r\n", "invalid chunk extension"},
      {"0\r\nX: y\r\n\n", "bare LF in trailer section"},
      {"0\r\nX: y\r\r\n", "bare CR in trailer section"},
      {"0\r\nX: y\rz\r\n\r\n", "bare CR in trailer section"},
      {"0\r\n y: z\r\n\r\n", "obsolete line folding in trailer"},
      {"0\r\nNoColon\r\n\r\n", "trailer field line without colon"},
      {"0\r\n: v\r\n\r\n", "empty trailer field name"},
      {"0\r\nX: \x01\r\n\r\n", "invalid character in trailer value"},
  };
  for (const Case& c : cases) {
    Decoded d = whole(BodyKind::Chunked, 0, c.in);
    EXPECT_TRUE(d.error) << c.in;
    EXPECT_EQ(d.status, 400) << c.in;
    EXPECT_EQ(d.reason, c.reason) << c.in;
    expect_same_in_all_splits(BodyKind::Chunked, 0, c.in);
  }
}

TEST(Http1Body, ChunkSizeLimitBoundary) {
  // 2^63 - 1 is the largest accepted size; its data never arrives here, so not done.
  Decoded d = whole(BodyKind::Chunked, 0, "7fffffffffffffff\r\nabc");
  EXPECT_FALSE(d.error) << d.reason;
  EXPECT_EQ(d.data, "abc");
}

TEST(Http1Body, ExtensionAndTrailerBounds) {
  std::string ext = "1;n=" + std::string(BodyDecoder::kMaxChunkExtension, 'v') + "\r\nx\r\n0\r\n\r\n";
  Decoded d = whole(BodyKind::Chunked, 0, ext);
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.reason, std::string("chunk extension too long"));

  std::string trailers = "0\r\n";
  for (size_t i = 0; i <= BodyDecoder::kMaxTrailerFields; ++i) trailers += "T: v\r\n";
  trailers += "\r\n";
  d = whole(BodyKind::Chunked, 0, trailers);
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.status, 431);

  std::string big = "0\r\nT: " + std::string(BodyDecoder::kMaxTrailerBytes, 'v') + "\r\n\r\n";
  d = whole(BodyKind::Chunked, 0, big);
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.status, 431);
}

TEST(Http1Body, ErrorIsSticky) {
  BodyDecoder d;
  d.start(BodyKind::Chunked);
  EXPECT_TRUE(d.step("z").error);
  BodyDecoder::Step st = d.step("0\r\n\r\n");
  EXPECT_TRUE(st.error);
  EXPECT_EQ(st.consumed, 0u);
}

}  // namespace
}  // namespace corral::http1
