// Data-driven tests over tests/unit/data/http1/{valid,invalid}/NNN.http + NNN.expect. Every
// case is parsed whole, one byte at a time, and in seeded random splits; all must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/http1/parser.h"

namespace corral::http1 {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  bool head_done = false;
  bool body_done = false;
  bool error = false;
  int status = 0;
  std::string reason;
  std::string method, target, host;
  int version = -1;
  size_t header_count = 0;
  BodyKind body = BodyKind::None;
  uint64_t content_length = 0;
  bool keep_alive = false;
  bool expect_continue = false;
  std::string data;
  size_t consumed = 0;  ///< head + body bytes used

  bool operator==(const Outcome&) const = default;
};

/// Feeds raw in deliveries ending at `cuts` (increasing, last == raw.size()).
Outcome run(std::string_view raw, const std::vector<size_t>& cuts) {
  Outcome o;
  RequestParser parser;
  RequestHead head;
  BodyDecoder body;
  size_t pos = 0;
  for (size_t avail : cuts) {
    if (!o.head_done) {
      HeadResult r = parser.parse(raw.substr(0, avail), head);
      if (r.status == ParseStatus::Error) {
        o.error = true;
        o.status = r.error.status;
        o.reason = r.error.reason;
        return o;
      }
      if (r.status == ParseStatus::Incomplete) continue;
      o.head_done = true;
      o.method = head.method;
      o.target = head.target;
      o.host = head.host;
      o.version = head.version_minor;
      o.header_count = head.headers.size();
      o.body = head.body;
      o.content_length = head.content_length;
      o.keep_alive = head.keep_alive;
      o.expect_continue = head.expect_continue;
      pos = r.consumed;
      body.start(head.body, head.content_length);
    }
    while (pos < avail && !body.done()) {
      BodyDecoder::Step st = body.step(raw.substr(pos, avail - pos));
      if (st.error) {
        o.error = true;
        o.status = st.why.status;
        o.reason = st.why.reason;
        return o;
      }
      o.data.append(st.data);
      pos += st.consumed;
      if (st.consumed == 0) break;
    }
  }
  o.body_done = o.head_done && body.done();
  o.consumed = pos;
  return o;
}

std::vector<size_t> whole(size_t n) { return {n}; }

std::vector<size_t> bytewise(size_t n) {
  std::vector<size_t> c;
  for (size_t i = 1; i <= n; ++i) c.push_back(i);
  return c;
}

std::vector<size_t> random_cuts(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<size_t> c;
  size_t at = 0;
  while (at < n) {
    at = std::min(n, at + 1 + rng() % 23);
    c.push_back(at);
  }
  return c;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// "key value" lines; '#' lines are comments.
std::map<std::string, std::string> read_expect(const fs::path& p) {
  std::map<std::string, std::string> m;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.find(' ');
    m[line.substr(0, sp)] = sp == std::string::npos ? "" : line.substr(sp + 1);
  }
  return m;
}

std::string unescape(std::string_view s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      r.push_back(s[i]);
      continue;
    }
    char c = s[++i];
    if (c == 'r') r.push_back('\r');
    else if (c == 'n') r.push_back('\n');
    else if (c == 't') r.push_back('\t');
    else if (c == 'x' && i + 2 < s.size()) {
      r.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else r.push_back(c);
  }
  return r;
}

BodyKind body_kind(const std::string& s) {
  if (s == "length") return BodyKind::ContentLength;
  if (s == "chunked") return BodyKind::Chunked;
  if (s == "close") return BodyKind::UntilClose;
  return BodyKind::None;
}

std::vector<fs::path> cases(const char* sub) {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(fs::path(CORRAL_HTTP1_DATA_DIR) / sub))
    if (e.path().extension() == ".http") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Http1Corpus, HasCases) {
  EXPECT_GE(cases("valid").size(), 20u);
  EXPECT_GE(cases("invalid").size(), 50u);
}

TEST(Http1Corpus, Valid) {
  for (const fs::path& http : cases("valid")) {
    SCOPED_TRACE(http.string());
    const std::string raw = read_file(http);
    auto e = read_expect(fs::path(http).replace_extension(".expect"));
    Outcome o = run(raw, whole(raw.size()));
    ASSERT_FALSE(o.error) << o.status << " " << o.reason;
    ASSERT_TRUE(o.body_done);
    EXPECT_EQ(o.consumed, raw.size());
    EXPECT_EQ(o.method, e["method"]);
    EXPECT_EQ(o.target, e["target"]);
    EXPECT_EQ(o.version, std::stoi(e["version"]));
    EXPECT_EQ(o.header_count, std::stoul(e["headers"]));
    EXPECT_EQ(o.host, e["host"]);
    EXPECT_EQ(o.body, body_kind(e["body"]));
    EXPECT_EQ(o.content_length, std::stoull(e["content_length"]));
    EXPECT_EQ(o.keep_alive, e["keep_alive"] == "1");
    EXPECT_EQ(o.expect_continue, e["expect_continue"] == "1");
    EXPECT_EQ(o.data, unescape(e["data"]));

    EXPECT_EQ(run(raw, bytewise(raw.size())), o) << "byte at a time";
    for (uint32_t seed = 1; seed <= 20; ++seed) EXPECT_EQ(run(raw, random_cuts(raw.size(), seed)), o) << seed;
  }
}

TEST(Http1Corpus, Invalid) {
  for (const fs::path& http : cases("invalid")) {
    SCOPED_TRACE(http.string());
    const std::string raw = read_file(http);
    auto e = read_expect(fs::path(http).replace_extension(".expect"));
    Outcome o = run(raw, whole(raw.size()));
    ASSERT_TRUE(o.error) << "accepted: " << o.method << " " << o.target;
    EXPECT_EQ(o.status, std::stoi(e["status"]));
    EXPECT_NE(o.reason.find(e["reason"]), std::string::npos) << o.reason;

    Outcome b = run(raw, bytewise(raw.size()));
    EXPECT_TRUE(b.error);
    EXPECT_EQ(b.status, o.status) << b.reason;
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      Outcome r = run(raw, random_cuts(raw.size(), seed));
      EXPECT_TRUE(r.error);
      EXPECT_EQ(r.status, o.status) << seed << " " << r.reason;
    }
  }
}

}  // namespace
}  // namespace corral::http1
