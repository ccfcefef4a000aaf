// FastCGI records: encoding byte for byte, and strict decoding (byte vectors in, events out).
#include "proxy/upstream/fastcgi_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace corral::proxy::fastcgi {
namespace {

using namespace std::string_literals;

std::string rec(uint8_t type, uint16_t id, std::string_view content, uint8_t padding = 0, uint8_t version = 1) {
  std::string r;
  r.push_back(static_cast<char>(version));
  r.push_back(static_cast<char>(type));
  r.push_back(static_cast<char>(id >> 8));
  r.push_back(static_cast<char>(id & 0xff));
  r.push_back(static_cast<char>(content.size() >> 8));
  r.push_back(static_cast<char>(content.size() & 0xff));
  r.push_back(static_cast<char>(padding));
  r.push_back(0);
  r.append(content);
  r.append(padding, '\0');
  return r;
}

std::string end_request(uint16_t id, uint32_t app_status, uint8_t protocol_status) {
  std::string b = {static_cast<char>(app_status >> 24), static_cast<char>(app_status >> 16),
                   static_cast<char>(app_status >> 8), static_cast<char>(app_status),
                   static_cast<char>(protocol_status), 0, 0, 0};
  return rec(3, id, b);
}

struct Collected {
  std::string out, err;
  bool ended = false;
  uint32_t app_status = 0;
  ProtocolStatus protocol = ProtocolStatus::RequestComplete;
  std::string error;
};

// Feeds `bytes` in pieces of `piece` bytes, the way reads arrive, keeping unconsumed input.
Collected decode(std::string_view bytes, size_t piece, uint16_t id = 1) {
  Decoder d;
  d.start(id);
  Collected c;
  std::string buf;
  size_t fed = 0;
  while (true) {
    if (fed < bytes.size()) {
      size_t n = std::min(piece, bytes.size() - fed);
      buf.append(bytes.substr(fed, n));
      fed += n;
    }
    while (true) {
      auto e = d.step(buf);
      if (e.kind == Decoder::Kind::Stdout) c.out.append(e.data);
      if (e.kind == Decoder::Kind::Stderr) c.err.append(e.data);
      if (e.kind == Decoder::Kind::End) {
        c.ended = true;
        c.app_status = e.app_status;
        c.protocol = e.protocol_status;
      }
      buf.erase(0, e.consumed);
      if (e.kind == Decoder::Kind::Error) {
        c.error = e.why;
        return c;
      }
      if (e.kind == Decoder::Kind::NeedMore || e.kind == Decoder::Kind::End) break;
    }
    if (fed == bytes.size()) return c;
  }
}

TEST(FastcgiCodec, BeginRequestIsResponderWithKeepConn) {
  std::string out;
  append_begin_request(out, 1, true);
  EXPECT_EQ(out, "\x01\x01\x00\x01\x00\x08\x00\x00"
                 "\x00\x01\x01\x00\x00\x00\x00\x00"s);
  out.clear();
  append_begin_request(out, 0x1234, false);
  EXPECT_EQ(out.substr(2, 2), "\x12\x34"s);
  EXPECT_EQ(out[10], '\0');
}

TEST(FastcgiCodec, NameValueLengthsUseOneOrFourBytes) {
  std::string out;
  ASSERT_TRUE(append_name_value(out, "AB", "xyz"));
  EXPECT_EQ(out, "\x02\x03" "ABxyz"s);
  out.clear();
  std::string big(128, 'v');  // 128 does not fit in 7 bits
  ASSERT_TRUE(append_name_value(out, std::string(127, 'n'), big));
  EXPECT_EQ(out.substr(0, 5), "\x7f\x80\x00\x00\x80"s);
  EXPECT_EQ(out.size(), 5 + 127 + 128u);
  out.clear();
  ASSERT_TRUE(append_name_value(out, "N", std::string(70000, 'x')));
  EXPECT_EQ(out.substr(0, 5), "\x01\x80\x01\x11\x70"s);  // 70000 = 0x011170
}

TEST(FastcgiCodec, ParamsArePaddedSplitAndTerminated) {
  std::vector<std::pair<std::string, std::string>> p = {{"A", "1"}, {"BIG", std::string(70000, 'x')}};
  std::string out;
  append_params(out, 1, p);
  // Record 1: 65535 bytes of the stream, padded by 1; record 2: the rest; then the empty record.
  ASSERT_EQ(static_cast<uint8_t>(out[1]), 4);
  EXPECT_EQ(out.substr(4, 3), "\xff\xff\x01"s);
  size_t second = 8 + 65535 + 1;
  size_t total = (1 + 1 + 1 + 1) + (1 + 4 + 3 + 70000);  // lengths + bytes of both pairs
  size_t rest = total - 65535;
  ASSERT_GT(out.size(), second + 8);
  EXPECT_EQ(static_cast<uint8_t>(out[second + 1]), 4);
  EXPECT_EQ((static_cast<uint8_t>(out[second + 4]) << 8) | static_cast<uint8_t>(out[second + 5]), static_cast<int>(rest));
  size_t pad = (8 - rest % 8) % 8;
  EXPECT_EQ(static_cast<uint8_t>(out[second + 6]), pad);
  size_t last = second + 8 + rest + pad;
  EXPECT_EQ(out.substr(last), "\x01\x04\x00\x01\x00\x00\x00\x00"s);
  // Every record is a multiple of 8 bytes and the pairs decode back.
  std::string stream = out.substr(8, 65535) + out.substr(second + 8, rest);
  std::vector<std::pair<std::string, std::string>> back;
  ASSERT_TRUE(decode_params(stream, [&](std::string_view n, std::string_view v) { back.emplace_back(n, v); }));
  EXPECT_TRUE(back == p);
}

TEST(FastcgiCodec, StdinPlanCoversTheBodyAndEndsEmpty) {
  std::string headers;
  std::vector<StdinRecord> recs;
  plan_stdin(headers, 1, 70000, [&](const StdinRecord& r) { recs.push_back(r); }, 32768);
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].length, 32768u);
  EXPECT_EQ(recs[2].body_offset, 65536u);
  EXPECT_EQ(recs[2].length, 70000u - 65536);
  EXPECT_EQ(recs[3].length, 0u);
  EXPECT_EQ(headers.substr(recs[3].header_offset), "\x01\x05\x00\x01\x00\x00\x00\x00"s);
  headers.clear();
  recs.clear();
  plan_stdin(headers, 1, 0, [&](const StdinRecord& r) { recs.push_back(r); });
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(headers.size(), 8u);
}

TEST(FastcgiCodec, DecodesStreamsInAnyPieces) {
  std::string bytes = rec(7, 1, "warn: x\n", 0) + rec(6, 1, "Content-Type: text/plain\r\n\r\n", 4) +
                      rec(6, 1, "hello") + rec(6, 1, "") + rec(7, 1, "") + end_request(1, 3, 0);
  for (size_t piece : {1ul, 3ul, 8ul, 9ul, 4096ul}) {
    Collected c = decode(bytes, piece);
    EXPECT_EQ(c.error, "") << piece;
    EXPECT_EQ(c.out, "Content-Type: text/plain\r\n\r\nhello") << piece;
    EXPECT_EQ(c.err, "warn: x\n") << piece;
    EXPECT_TRUE(c.ended) << piece;
    EXPECT_EQ(c.app_status, 3u);
    EXPECT_EQ(c.protocol, ProtocolStatus::RequestComplete);
  }
}

TEST(FastcgiCodec, ReportsProtocolStatus) {
  Collected c = decode(end_request(1, 0, 2), 100);
  EXPECT_TRUE(c.ended);
  EXPECT_EQ(c.protocol, ProtocolStatus::Overloaded);
}

TEST(FastcgiCodec, RejectsBadVersion) {
  EXPECT_EQ(decode(rec(6, 1, "x", 0, 2), 100).error, "FastCGI record with a version other than 1");
}

TEST(FastcgiCodec, RejectsUnexpectedTypes) {
  for (uint8_t t : {1, 2, 4, 5, 8, 9, 10, 11, 12, 200})
    EXPECT_EQ(decode(rec(t, 1, "12345678"), 100).error, "unexpected FastCGI record type") << int(t);
}

TEST(FastcgiCodec, RejectsOtherRequestIds) {
  EXPECT_EQ(decode(rec(6, 2, "x"), 100).error, "FastCGI record for another request id");
  EXPECT_EQ(decode(rec(6, 0, "x"), 100).error, "FastCGI record for another request id");
  EXPECT_EQ(decode(rec(6, 7, "x"), 100, 7).error, "");
}

TEST(FastcgiCodec, RejectsBadEndRequestLength) {
  EXPECT_EQ(decode(rec(3, 1, "1234567"), 100).error, "END_REQUEST body is not 8 bytes");
  EXPECT_EQ(decode(rec(3, 1, "123456789"), 100).error, "END_REQUEST body is not 8 bytes");
}

std::string out_and_end_then_late() { return rec(6, 1, "A: b\n\n") + end_request(1, 0, 0) + rec(6, 1, "late"); }

TEST(FastcgiCodec, RejectsBytesAfterEndRequest) {
  // In the same read: End first (the response is complete), then the error. Found by
  // fuzz_fastcgi: the End was swallowed when more bytes followed it in one read, so the same
  // answer was complete or a 502 depending on how the bytes were split into reads.
  for (size_t piece : {size_t{4096}, size_t{1}, size_t{16}}) {
    Decoder d;
    d.start(1);
    std::string buf = out_and_end_then_late();
    std::string fed;
    bool ended = false;
    std::string error;
    for (size_t at = 0; at < buf.size() && error.empty(); at += piece) {
      fed.append(buf.substr(at, piece));
      for (;;) {
        auto ev = d.step(fed);
        fed.erase(0, ev.consumed);
        if (ev.kind == Decoder::Kind::End) ended = true;
        if (ev.kind == Decoder::Kind::Error) error = ev.why;
        if (ev.kind == Decoder::Kind::NeedMore || ev.kind == Decoder::Kind::Error) break;
        if (ev.kind == Decoder::Kind::End && fed.empty()) break;
      }
    }
    EXPECT_TRUE(ended) << piece;
    EXPECT_EQ(error, "bytes after END_REQUEST") << piece;
  }
  // Arriving in a later read is caught too.
  Decoder d;
  d.start(1);
  std::string e = end_request(1, 0, 0);
  auto ev = d.step(e);
  ASSERT_EQ(ev.kind, Decoder::Kind::End);
  EXPECT_TRUE(d.ended());
  EXPECT_EQ(d.step("x").kind, Decoder::Kind::Error);
}

TEST(FastcgiCodec, WaitsForAWholeEndRequest) {
  Decoder d;
  d.start(1);
  std::string e = end_request(1, 0, 0);
  auto ev = d.step(std::string_view(e).substr(0, 12));
  EXPECT_EQ(ev.kind, Decoder::Kind::NeedMore);
  EXPECT_EQ(ev.consumed, 0u);
  EXPECT_EQ(d.step(e).kind, Decoder::Kind::End);
}

TEST(FastcgiCodec, ErrorIsSticky) {
  Decoder d;
  d.start(1);
  EXPECT_EQ(d.step(rec(9, 1, "")).kind, Decoder::Kind::Error);
  EXPECT_EQ(d.step(rec(6, 1, "ok")).kind, Decoder::Kind::Error);
}

}  // namespace
}  // namespace corral::proxy::fastcgi
