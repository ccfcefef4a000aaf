// Property: what the HTTP/2 front end sends to a worker is always a request that corral's own
// strict HTTP/1.1 parser (common/http1) accepts, and it is the request the client sent after
// the documented rewrites; a request corral refuses is answered with RST_STREAM or a 4xx/501
// and never reaches a worker.
//
// h2raw/h2_random_requests.py sends random requests (methods, :scheme, :path over all byte
// values, :authority and Host, field names and values with edge bytes, cookies, te,
// content-length right and wrong, bodies, trailers) through the real proxy to a capturing
// worker (tests/apps/capture), which writes every head it receives byte for byte and names
// the file in its answer. Every captured head is parsed here with http1::RequestParser.
//
// Seed and count: CORRAL_H2_PROPERTY_SEED (default 20261205), CORRAL_H2_PROPERTY_COUNT
// (default 400); the seed is printed, so a failure can be replayed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/base/strings.h"
#include "common/http1/parser.h"
#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

constexpr int kProtocolError = 1;

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// Client fields the proxy removes or replaces on the way to the worker (documented in
// proxy/forwarding_headers.h and proxy/README.md): the worker's versions of these are
// compared separately or not at all.
bool rewritten(std::string_view n) {
  for (const char* r : {"host", "cookie", "te", "trailer", "content-length", "expect", "max-forwards", "x-forwarded-for",
                        "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-prefix",
                        "x-remote-port", "x-request-id", "forwarded", "traceparent", "tracestate"})
    if (iequals(n, r)) return true;
  return false;
}

struct Sent {
  std::string method, scheme, path, authority, host;
  std::vector<std::string> max_forwards;
  bool has_authority = false, has_host = false;
  std::vector<std::pair<std::string, std::string>> fields;  // regular fields, in order
  std::vector<std::string> cookies;
  std::string body;
};

Sent decode(const nlohmann::json& rec) {
  Sent s;
  for (const auto& f : rec["fields"]) {
    std::string n = unhex(f[0]), v = unhex(f[1]);
    if (n == ":method") s.method = v;
    else if (n == ":scheme") s.scheme = v;
    else if (n == ":path") s.path = v;
    else if (n == ":authority") s.authority = v, s.has_authority = true;
    else if (n == "host") s.host = v, s.has_host = true;
    else if (n == "cookie" && !v.empty()) s.cookies.push_back(v);  // an empty crumb adds nothing
    else if (n == "max-forwards") s.max_forwards.push_back(v);
    if (!n.empty() && n[0] != ':') s.fields.emplace_back(n, v);
  }
  s.body = unhex(rec["body"]);
  return s;
}

class H2ForwardProperty : public IntegrationTest {};

TEST_F(H2ForwardProperty, EveryForwardedHeadParsesStrictlyAndMatchesTheRequest) {
  const uint64_t seed = env_or("CORRAL_H2_PROPERTY_SEED", 20261205);
  const uint64_t count = env_or("CORRAL_H2_PROPERTY_COUNT", 400);
  std::printf("h2 forwarding property: seed=%llu count=%llu (CORRAL_H2_PROPERTY_SEED, CORRAL_H2_PROPERTY_COUNT)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(count));
  const std::string cap = rt_.path() + "/cap";
  config_.app("cap").command = {"/usr/bin/python3", std::string(CORRAL_SOURCE_DIR) + "/tests/apps/capture/capture_backend.py",
                                cap};
  config_.app("cap").workers(2).concurrency(8).set("health_path", quote(""));
  config_.proxy("max_body_size", quote("1MiB"));
  ASSERT_NO_FATAL_FAILURE(start());

  ProcessResult r = run_process({"/usr/bin/python3", std::string(CORRAL_SOURCE_DIR) + "/tests/integration/h2raw/h2_random_requests.py",
                                 "127.0.0.1", std::to_string(port()), std::to_string(seed), std::to_string(count)},
                                120s);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::set<std::string> claimed;
  int forwarded = 0, refused = 0, valid = 0;
  std::map<std::string, int> refusals;
  http1::Limits limits;
  limits.max_head_size = 1 << 20;
  limits.max_header_count = 1000;
  std::istringstream lines(r.out);
  std::string line;
  uint64_t seen = 0;
  while (std::getline(lines, line)) {
    nlohmann::json rec = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(rec.is_object()) << line;
    if (line.size() > 800) line = line.substr(0, 800) + "...";  // for failure messages
    ++seen;
    Sent s = decode(rec);
    const std::string what = "request " + std::to_string(rec["i"].get<int>()) + " (seed " + std::to_string(seed) +
                             "): " + printable(s.method) + " " + printable(s.path) + " authority [" +
                             printable(s.authority) + "]";
    if (rec["valid"].get<bool>()) ++valid;
    ASSERT_TRUE(rec["goaway"].is_null()) << what << ": a request alone never ends the connection: " << line;
    if (!rec["capture"].is_string()) {
      // Refused: RST_STREAM(PROTOCOL_ERROR) or an error status, and nothing reached a worker
      // (checked below: every captured head belongs to an answered request).
      ++refused;
      EXPECT_FALSE(rec["valid"].get<bool>()) << what << ": a well-formed request was refused: " << line;
      if (rec["rst"].is_number()) {
        EXPECT_EQ(rec["rst"], kProtocolError) << what;
        refusals["RST_STREAM(PROTOCOL_ERROR)"]++;
      } else {
        ASSERT_TRUE(rec["status"].is_number()) << what << ": no answer: " << line;
        int st = rec["status"];
        // The proxy answers OPTIONS * and an OPTIONS or TRACE whose Max-Forwards is 0 itself
        // (RFC 9110 §9.3.7, §7.6.2), as for HTTP/1.1 clients.
        const bool final_recipient =
            (s.method == "OPTIONS" || s.method == "TRACE") &&
            (s.path == "*" || (s.max_forwards.size() == 1 && s.max_forwards[0] == "0"));
        EXPECT_TRUE((st >= 400 && st < 500) || st == 501 || (final_recipient && st == 200)) << what << ": status " << st;
        refusals[std::to_string(st)]++;
      }
      continue;
    }
    ++forwarded;
    EXPECT_EQ(rec["status"], 200) << what;
    const std::string name = rec["capture"];
    EXPECT_TRUE(claimed.insert(name).second) << what << ": two answers name capture " << name;
    const std::string head = read_file(cap + "/" + name + ".head");
    ASSERT_FALSE(head.empty()) << what << ": no capture " << name;

    // 1. corral's own strict parser accepts the head, all of it.
    http1::RequestParser parser(limits);
    http1::RequestHead h;
    http1::HeadResult pr = parser.parse(head, h);
    ASSERT_EQ(pr.status, http1::ParseStatus::Done)
        << what << ": the worker got a head corral's parser refuses (" << pr.error.reason << "):\n" << printable(head);
    EXPECT_EQ(pr.consumed, head.size()) << what;

    // 2. It is the client's request after the documented rewrites.
    EXPECT_EQ(h.method, s.method) << what;
    EXPECT_EQ(h.target, s.path) << what;
    EXPECT_EQ(h.version_minor, 1) << what;
    EXPECT_EQ(h.host, s.has_authority ? s.authority : s.host) << what << ": Host comes from :authority (or host)";
    std::vector<std::pair<std::string, std::string>> want, got;
    for (const auto& [n, v] : s.fields)
      if (!rewritten(n)) want.emplace_back(n, v);
    int cookies = 0, lengths = 0, hosts = 0, vias = 0;
    std::vector<std::string> max_forwards;
    for (const auto& f : h.headers) {
      std::string n(f.name), v(f.value);
      if (iequals(n, "cookie")) {
        ++cookies;
        std::string joined;
        for (const auto& c : s.cookies) joined += (joined.empty() ? "" : "; ") + c;
        EXPECT_EQ(v, joined) << what << ": cookie crumbs are joined with \"; \" (RFC 9113 §8.2.3)";
      } else if (iequals(n, "content-length")) {
        ++lengths;
        EXPECT_EQ(v, std::to_string(s.body.size())) << what;
      } else if (iequals(n, "host")) {
        ++hosts;
      } else if (iequals(n, "via") && v.size() > 7 && v.substr(v.size() - 7) == " corral") {
        ++vias;
        EXPECT_EQ(v, "2 corral") << what << ": Via names HTTP/2 as the received protocol (RFC 9110 §7.6.3)";
      } else if (iequals(n, "max-forwards")) {
        max_forwards.push_back(v);
      } else if (iequals(n, "transfer-encoding") || iequals(n, "te") || iequals(n, "connection")) {
        ADD_FAILURE() << what << ": " << n << " reached the worker";
      } else if (!rewritten(n)) {
        got.emplace_back(n, v);
      }
    }
    EXPECT_EQ(hosts, 1) << what;
    EXPECT_EQ(vias, 1) << what;
    if (s.method == "OPTIONS" || s.method == "TRACE") {
      // Forwarded only with one Max-Forwards above 0, which is decremented (RFC 9110 §7.6.2).
      if (s.max_forwards.empty()) {
        EXPECT_TRUE(max_forwards.empty()) << what;
      } else if (auto mf = parse_decimal(s.max_forwards[0]); s.max_forwards.size() == 1 && mf && *mf > 0) {
        EXPECT_EQ(max_forwards, std::vector<std::string>{std::to_string(*mf - 1)}) << what;
      } else {
        ADD_FAILURE() << what << ": forwarded with Max-Forwards " << s.max_forwards[0];
      }
    } else {
      EXPECT_EQ(max_forwards, s.max_forwards) << what;
    }
    EXPECT_EQ(cookies, s.cookies.empty() ? 0 : 1) << what;
    if (!s.body.empty()) {
      EXPECT_EQ(lengths, 1) << what;
    }
    EXPECT_EQ(got, want) << what << ": the end-to-end fields, in order, unchanged";
    EXPECT_EQ(read_file(cap + "/" + name + ".body"), s.body) << what << ": the body, byte for byte";
  }
  EXPECT_EQ(seen, count) << r.err;

  // Nothing reached a worker that was not answered as forwarded: no refused request, no copy.
  int captured = 0;
  for (const auto& e : std::filesystem::directory_iterator(cap)) {
    std::string f = e.path().filename().string();
    if (f.size() < 5 || f.substr(f.size() - 5) != ".head") continue;
    ++captured;
    EXPECT_TRUE(claimed.count(f.substr(0, f.size() - 5))) << "the worker got a request no client saw answered:\n"
                                                          << printable(read_file(e.path().string()));
  }
  EXPECT_EQ(captured, forwarded);
  std::printf("h2 forwarding property: %d forwarded (all parsed strictly), %d refused (", forwarded, refused);
  for (const auto& [k, v] : refusals) std::printf(" %s: %d", k.c_str(), v);
  std::printf(" ), %d drawn from the valid sets\n", valid);
  // The generator must exercise both sides.
  EXPECT_GT(forwarded, static_cast<int>(count / 4));
  EXPECT_GT(refused, static_cast<int>(count / 10));
}

}  // namespace
}  // namespace corral::itest
