#include "handlers.h"

#include "leftovers.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace testapp {
namespace {

long query_number(const Request& req, const char* key, long fallback, long max) {
  std::string v = req.query(key);
  if (v.empty()) return fallback;
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (*end != '\0' || n < 0) return fallback;
  return n > max ? max : n;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string echo_json(const Request& req) {
  std::string out = "{\"method\":";
  json_string(out, req.method);
  out += ",\"target\":";
  json_string(out, req.target);
  out += ",\"version\":";
  json_string(out, req.version);
  out += ",\"pid\":" + std::to_string(::getpid());
  out += ",\"headers\":[";
  bool first = true;
  for (auto& [k, v] : req.headers) {
    if (!first) out += ',';
    first = false;
    out += '[';
    json_string(out, k);
    out += ',';
    json_string(out, v);
    out += ']';
  }
  out += "],\"body\":";
  json_string(out, req.body);
  out += "}\n";
  return out;
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

bool bodyless(int status) { return status < 200 || status == 204 || status == 304; }

std::string big_body(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// N bytes of a JSON array of order records (deterministic, the kind of API answer that gets
// compressed): ids, SKUs, names, prices, states and timestamps from a fixed pseudo-random
// sequence, so gzip shrinks it to about a fifth, not to nothing.
std::string json_body(size_t n) {
  static const char* const kWords[] = {"alpha", "beta",  "gamma", "delta",   "epsilon", "kappa",  "sigma",
                                       "omega", "red",   "green", "blue",    "small",   "large",  "order"};
  static const char* const kStates[] = {"shipped", "pending", "refunded"};
  uint32_t x = 2463534242u;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  std::string s = "{\"items\": [";
  s.reserve(n + 256);
  char buf[256];
  for (unsigned i = 0;; ++i) {
    int len = std::snprintf(buf, sizeof buf,
                            "%s{\"id\": %u, \"sku\": \"SKU-%06u\", \"name\": \"%s %s %s\", \"price\": %u.%02u, "
                            "\"qty\": %u, \"status\": \"%s\", \"created\": \"2026-%02u-%02uT%02u:%02u:%02uZ\"}",
                            i ? ", " : "", i, next() % 1000000, kWords[next() % 14], kWords[next() % 14],
                            kWords[next() % 14], next() % 1000, next() % 100, next() % 100, kStates[next() % 3],
                            1 + next() % 12, 1 + next() % 28, next() % 24, next() % 60, next() % 60);
    if (s.size() + static_cast<size_t>(len) + 2 > n) break;
    s.append(buf, static_cast<size_t>(len));
  }
  // Valid JSON of exactly n bytes (when n leaves room for the brackets): padded with spaces.
  if (s.size() + 2 < n) s.append(n - 2 - s.size(), ' ');
  s += "]}";
  return s;
}

std::string chunk_encode(const std::string& body) {
  constexpr size_t kChunk = 8192;
  std::string out;
  out.reserve(body.size() + body.size() / kChunk * 8 + 16);
  for (size_t off = 0; off < body.size(); off += kChunk) {
    size_t n = std::min(kChunk, body.size() - off);
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    out += size_line;
    out.append(body, off, n);
    out += "\r\n";
  }
  out += "0\r\n\r\n";
  return out;
}

}  // namespace

bool is_introspection(const Request& req) { return req.path() == "/maxinflight"; }

bool is_soak(const Request& req) {
  const std::string path = req.path();
  return path.size() >= 5 && path.compare(path.size() - 5, 5, "/soak") == 0;
}

Response handle(const Request& req, const Counters& counters, uint64_t connection_serial) {
  Response r;
  const std::string path = req.path();
  if (path == "/") {
    r.body = "hello from testapp\n";
  } else if (path == "/bad-response") {
    // Responses a strict proxy must not pass on as they are (the hostile-input suite).
    static const std::pair<const char*, const char*> kinds[] = {
        {"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
        {"space-colon", "HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\nok"},
        {"cl-invalid", "HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok"},
        {"cl-differing", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!"},
        {"cl-te", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
        {"te-not-chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok"},
        {"bare-lf", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
        {"nul-in-value", "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok"},  // 50 bytes
        {"cl-on-204", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"},
        {"unasked-101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"},
        {"http10-te", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
        {"bad-status", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"},
        {"short-body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"},
        {"hop", "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
                "Proxy-Connection: x\r\nUpgrade: foo\r\nTrailer: X-T\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                "X-Kept: k\r\nContent-Length: 2\r\n\r\nok"},
    };
    const std::string kind = req.query("kind");
    for (auto& [k, raw] : kinds)
      if (kind == k) r.raw = kind == "nul-in-value" ? std::string(raw, 50) : std::string(raw);
    if (r.raw.empty()) r.status = 404;
  } else if (path == "/early-hints") {
    r.interim = "HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n";
    r.body = "hinted\n";
  } else if (path == "/pid") {
    r.body = std::to_string(::getpid());
  } else if (path == "/echo") {
    r.content_type = "application/json";
    r.body = echo_json(req);
  } else if (path == "/sleep") {
    long ms = query_number(req, "ms", 0, 600'000);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    r.body = "slept " + std::to_string(ms) + "\n";
  } else if (path == "/cpu") {
    long ms = query_number(req, "ms", 0, 600'000);
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile uint64_t x = 0;
    while (std::chrono::steady_clock::now() < until)
      for (int i = 0; i < 10000; ++i) x = x + static_cast<uint64_t>(i);
    r.body = "burned " + std::to_string(ms) + "\n";
  } else if (path == "/alloc") {
    // Allocates N MiB, touches every page and keeps it for the process's life (max_rss tests).
    long mb = query_number(req, "mb", 0, 4096);
    static std::mutex mu;
    static std::vector<std::unique_ptr<char[]>> kept;
    auto block = std::make_unique<char[]>(static_cast<size_t>(mb) << 20);
    for (size_t i = 0; i < (static_cast<size_t>(mb) << 20); i += 4096) block[i] = 1;
    {
      std::lock_guard<std::mutex> g(mu);
      kept.push_back(std::move(block));
    }
    r.body = "allocated " + std::to_string(mb) + " MiB\n";
  } else if (path == "/big") {
    long n = query_number(req, "bytes", 0, 1L << 30);
    r.content_type = "application/octet-stream";
    r.body = big_body(static_cast<size_t>(n));
    if (req.query("chunked") == "1") {
      r.chunked = true;
      r.body = chunk_encode(r.body);
    }
  } else if (path == "/early") {
    r.status = static_cast<int>(query_number(req, "code", 200, 999));
    if (r.status < 200) r.status = 200;
    r.content_type = "application/octet-stream";
    r.body = big_body(static_cast<size_t>(query_number(req, "bytes", 0, 64L << 20)));
  } else if (path == "/json") {
    r.content_type = "application/json";
    r.body = json_body(static_cast<size_t>(query_number(req, "bytes", 1024, 64L << 20)));
  } else if (path == "/sha256") {
    r.body = req.body;  // "HEX BYTES\n", computed while the body was read (main.cc)
  } else if (path == "/maxinflight") {
    r.body = std::to_string(counters.max_in_flight.load());
  } else if (path == "/status") {
    r.status = static_cast<int>(query_number(req, "code", 200, 999));
    if (r.status < 100) r.status = 200;
    if (!bodyless(r.status)) r.body = "status " + std::to_string(r.status) + "\n";
  } else if (path == "/env") {
    const char* v = std::getenv(req.query("name").c_str());
    if (v == nullptr) {
      r.status = 404;
      r.body = "unset\n";
    } else {
      r.body = v;
    }
  } else if (path == "/conn") {
    r.body = std::to_string(::getpid()) + ":" + std::to_string(connection_serial);
  } else if (path == "/exit") {
    r.exit_now = true;
  } else if (is_soak(req)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(query_number(req, "ms", 0, 60'000)));
    const char* v = std::getenv("WHOAMI");
    r.body = std::string(v ? v : "") + " " + req.body;  // req.body: "HEX BYTES\n" (main.cc)
    r.body.append(static_cast<size_t>(query_number(req, "pad", 0, 16L << 20)), 'p');
  } else if (path == "/fork-away") {
    const pid_t pid = fork_away(req.query("serve") == "1");
    r.status = pid > 0 ? 200 : 500;
    r.body = std::to_string(pid);
  } else if (path == "/close-listener") {
    r.close_listener = true;
    r.body = std::to_string(::getpid());
  } else if (path.size() >= 7 && path.compare(path.size() - 7, 7, "/whoami") == 0) {
    // Under any mount point: $WHOAMI, which tests set per app and generation.
    const char* v = std::getenv("WHOAMI");
    r.body = v ? v : "";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  r.headers.emplace_back("X-Testapp-Pid", std::to_string(::getpid()));
  r.headers.emplace_back("X-Testapp-Target", req.target);
  return r;
}

std::string serialize_head(const Response& resp, bool keep_alive) {
  std::string h = "HTTP/1.1 " + std::to_string(resp.status) + " " + reason(resp.status) + "\r\n";
  h += "Content-Type: " + resp.content_type + "\r\n";
  for (auto& [k, v] : resp.headers) h += k + ": " + v + "\r\n";
  if (!bodyless(resp.status)) {
    if (resp.chunked)
      h += "Transfer-Encoding: chunked\r\n";
    else
      h += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
  }
  if (!keep_alive) h += "Connection: close\r\n";
  h += "\r\n";
  return h;
}

}  // namespace testapp
