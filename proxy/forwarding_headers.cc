#include "proxy/forwarding_headers.h"

#include <sys/random.h>

#include <charconv>
#include <chrono>

#include "common/base/cached_utc.h"
#include "common/base/strings.h"
#include "common/http1/serializer.h"

namespace corral::proxy {
namespace {

bool is_framing(std::string_view name) {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding");
}

bool is_forwarding(std::string_view name) {
  return iequals(name, "x-forwarded-for") || iequals(name, "x-forwarded-proto") ||
         iequals(name, "x-forwarded-host") || iequals(name, "x-request-id") || iequals(name, "forwarded") ||
         iequals(name, "x-forwarded-port") || iequals(name, "x-forwarded-prefix") || iequals(name, "x-remote-port") ||
         iequals(name, "x-real-ip");
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// n lowercase hex digits, not all '0' when nonzero is set.
bool hex_field(std::string_view v, bool nonzero) {
  bool any = false;
  for (char c : v) {
    if (!is_lower_hex(c)) return false;
    any = any || c != '0';
  }
  return any || !nonzero;
}

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void put_hex(char* out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = kHex[v & 0xf];
    v >>= 4;
  }
}

}  // namespace

bool ConnectionTokens::contains(std::string_view name, const std::vector<http1::Header>& headers) const {
  if (count == kMax) {
    // Perhaps more than were kept: the fields say.
    for (const auto& h : headers)
      if (iequals(h.name, "connection") && list_contains(h.value, name, "")) return true;
    return false;
  }
  for (size_t i = 0; i < count; ++i)
    if (iequals(names[i], name)) return true;
  return false;
}

ConnectionTokens connection_tokens(const std::vector<http1::Header>& headers) {
  ConnectionTokens t;
  for (const auto& h : headers) {
    if (!iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view tok = trim_ows(v.substr(0, comma));
      if (!tok.empty()) {
        t.names[t.count++] = tok;
        if (t.count == ConnectionTokens::kMax) return t;  // the rest: contains() reads the fields
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return t;
}

MaxForwardsFields max_forwards_fields(const http1::RequestHead& req) {
  MaxForwardsFields mf;
  if (req.method != "OPTIONS" && req.method != "TRACE") return mf;
  for (const auto& h : req.headers)
    if (iequals(h.name, "max-forwards") && mf.count++ == 0) mf.first = h.value;
  return mf;
}

LocalAnswer local_answer(std::string_view method, std::string_view target, MaxForwardsFields max_forwards) {
  if (max_forwards.count > 0 && (method == "OPTIONS" || method == "TRACE")) {
    // Two values: no way to tell which counts.
    if (max_forwards.count > 1) return {400, "invalid Max-Forwards"};
    auto n = parse_decimal(max_forwards.first);
    if (!n) return {400, "invalid Max-Forwards"};
    if (*n == 0) return {method == "TRACE" ? 501 : 200};
  }
  if (method == "CONNECT") return {501, "CONNECT is not supported"};
  if (target == "*") return {200};
  return {};
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "trailer") || iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    default: return false;
  }
}

void append_request_head(const http1::RequestHead& req, const Forwarding& fwd, std::string& out) {
  out.append(req.method);
  out.push_back(' ');
  // An absolute-form target goes to the worker in origin-form: path and query, "/" for an
  // empty path (RFC 9112 §3.2.1), with its authority as Host (§3.2.2).
  const bool absolute = !req.authority.empty() && req.method != "CONNECT" && !req.target.empty() &&
                        req.target.front() != '/';
  if (absolute) {
    std::string_view t = req.target;
    size_t slash = t.find("://");
    size_t path = slash == std::string_view::npos ? std::string_view::npos : t.find_first_of("/?", slash + 3);
    if (path == std::string_view::npos) {
      out.push_back('/');
    } else {
      if (t[path] == '?') out.push_back('/');
      out.append(t.substr(path));
    }
  } else {
    out.append(req.target);
  }
  out.append(" HTTP/1.1\r\n", 11);
  ConnectionTokens conn = connection_tokens(req.headers);
  const bool count_hops = req.method == "OPTIONS" || req.method == "TRACE";
  bool have_host = false;
  for (const auto& h : req.headers) {
    if (is_hop_by_hop(h.name) || is_framing(h.name) || is_forwarding(h.name)) continue;
    if (iequals(h.name, "expect") || iequals(h.name, "traceparent")) continue;
    if (!fwd.keep_tracestate && iequals(h.name, "tracestate")) continue;
    if (conn.count && conn.contains(h.name, req.headers)) continue;
    if (iequals(h.name, "host")) {
      if (have_host) continue;
      have_host = true;
      append_header(out, h.name, absolute ? req.authority : h.value);
      continue;
    }
    if (count_hops && iequals(h.name, "max-forwards")) {
      // local_answer() answered 0 and invalid values: this one is above 0.
      if (auto n = parse_decimal(h.value); n && *n > 0) {
        out.append("Max-Forwards: ", 14);
        append_decimal(out, *n - 1);
        out.append("\r\n", 2);
      }
      continue;
    }
    append_header(out, h.name, h.value);
  }
  // HTTP/1.0 requests may lack Host; HTTP/1.1 to the worker requires one.
  if (!have_host) append_header(out, "Host", fwd.host.empty() ? std::string_view("localhost") : fwd.host);
  out.append("Via: ", 5);
  if (!fwd.received_protocol.empty()) {
    out.append(fwd.received_protocol);
  } else {
    out.append(req.version_minor == 0 ? "1.0" : "1.1", 3);
  }
  out.append(" corral\r\n", 9);
  if (fwd.trusted_peer && !fwd.forwarded_for.empty()) {
    out.append("X-Forwarded-For: ", 17);
    out.append(fwd.forwarded_for);
    if (!fwd.client_ip.empty()) out.append(", ", 2).append(fwd.client_ip);
    out.append("\r\n", 2);
  } else if (!fwd.client_ip.empty()) {
    append_header(out, "X-Forwarded-For", fwd.client_ip);
  }
  if (!fwd.real_ip.empty() && fwd.real_ip != fwd.client_ip) append_header(out, "X-Real-IP", fwd.real_ip);
  std::string_view proto = fwd.proto;
  if (fwd.trusted_peer) {
    // The scheme the trusted proxy saw (only its two meaningful values; the first field).
    std::string_view theirs = trim_ows(header_value(req.headers, "x-forwarded-proto"));
    if (iequals(theirs, "https")) proto = "https";
    else if (iequals(theirs, "http")) proto = "http";
  }
  append_header(out, "X-Forwarded-Proto", proto);
  if (!fwd.host.empty()) append_header(out, "X-Forwarded-Host", fwd.host);
  if (!fwd.request_id.empty()) append_header(out, "X-Request-Id", fwd.request_id);
  if (fwd.server_port) {
    out.append("X-Forwarded-Port: ");
    append_decimal(out, fwd.server_port);
    out.append("\r\n", 2);
  }
  if (fwd.client_port) {
    out.append("X-Remote-Port: ");
    append_decimal(out, fwd.client_port);
    out.append("\r\n", 2);
  }
  if (!fwd.prefix.empty()) append_header(out, "X-Forwarded-Prefix", fwd.prefix);
  if (!fwd.traceparent.empty()) append_header(out, "traceparent", fwd.traceparent);
  if (!fwd.upgrade.empty()) {
    append_header(out, "Upgrade", fwd.upgrade);
    append_header(out, "Connection", "upgrade");
  }
}

void finish_request_head_chunked(std::string& out) { out.append("Transfer-Encoding: chunked\r\n\r\n"); }

void finish_request_head(std::string& out, uint64_t body_length, bool had_body) {
  if (had_body || body_length > 0) {
    out.append("Content-Length: ", 16);
    append_decimal(out, body_length);
    out.append("\r\n", 2);
  }
  out.append("\r\n", 2);
}

ClientFraming choose_framing(const http1::ResponseHead& resp, int client_minor, bool head_request) {
  if (head_request) {
    // The parser gives a HEAD response no body (BodyKind::None) but keeps the length the
    // worker announced: the GET's, passed through as is.
    bool length = resp.has_content_length || resp.body == http1::BodyKind::ContentLength;
    return length && resp.status != 204 && resp.status >= 200 ? ClientFraming::ContentLength : ClientFraming::None;
  }
  if (resp.status == 204 || resp.status == 304 || resp.status < 200) return ClientFraming::None;
  switch (resp.body) {
    case http1::BodyKind::None: return ClientFraming::Empty;
    case http1::BodyKind::ContentLength: return ClientFraming::ContentLength;
    case http1::BodyKind::Chunked:
    case http1::BodyKind::UntilClose:
      return client_minor >= 1 ? ClientFraming::Chunked : ClientFraming::UntilClose;
  }
  return ClientFraming::None;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

std::string_view header_value(const std::vector<http1::Header>& headers, std::string_view name) {
  for (const auto& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

namespace {

// The status line and the end-to-end fields of a response head, for a final and an interim
// head alike. Returns whether a Date field was among them.
bool append_status_and_fields(const http1::ResponseHead& resp, std::string& out) {
  out.append("HTTP/1.1 ", 9);
  append_decimal(out, static_cast<uint64_t>(resp.status));
  out.push_back(' ');
  out.append(resp.reason.empty() ? http1::reason_phrase(resp.status) : resp.reason);
  out.append("\r\n", 2);
  ConnectionTokens conn = connection_tokens(resp.headers);
  bool have_date = false;
  for (const auto& h : resp.headers) {
    if (is_hop_by_hop(h.name) || is_framing(h.name)) continue;
    if (conn.count && conn.contains(h.name, resp.headers)) continue;
    have_date = have_date || iequals(h.name, "date");
    append_header(out, h.name, h.value);
  }
  return have_date;
}

}  // namespace

void append_interim_head(const http1::ResponseHead& resp, std::string& out) {
  append_status_and_fields(resp, out);
  out.append("\r\n", 2);
}

void append_response_head(const http1::ResponseHead& resp, ClientFraming framing, int client_minor, bool keep_alive,
                          std::string& out) {
  // RFC 9110 §6.6.1: a recipient with a clock adds the Date a response came without.
  if (!append_status_and_fields(resp, out)) append_header(out, "Date", http_date_now());
  switch (framing) {
    case ClientFraming::ContentLength:
      out.append("Content-Length: ", 16);
      append_decimal(out, resp.content_length);
      out.append("\r\n", 2);
      break;
    case ClientFraming::Chunked: out.append("Transfer-Encoding: chunked\r\n"); break;
    case ClientFraming::Empty: out.append("Content-Length: 0\r\n"); break;
    case ClientFraming::None:
    case ClientFraming::UntilClose: break;
  }
  if (!keep_alive || framing == ClientFraming::UntilClose)
    out.append("Connection: close\r\n");
  else if (client_minor == 0)
    out.append("Connection: keep-alive\r\n");
  out.append("\r\n", 2);
}

RequestIdGenerator::RequestIdGenerator() : prefix_(0) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r) r = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this));
  prefix_ = r;
}

std::string_view RequestIdGenerator::next(std::array<char, kSize>& buf) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed) + 1;
  for (int i = 7; i >= 0; --i) buf[static_cast<size_t>(7 - i)] = kHex[(prefix_ >> (i * 4)) & 0xf];
  buf[8] = '-';
  for (int i = 11; i >= 0; --i) buf[static_cast<size_t>(9 + 11 - i)] = kHex[(n >> (i * 4)) & 0xf];
  return std::string_view(buf.data(), kSize);
}

bool valid_traceparent(std::string_view v) {
  if (v.size() < kTraceparentSize) return false;
  // version "-" trace-id "-" parent-id "-" trace-flags
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  const std::string_view version = v.substr(0, 2);
  if (!hex_field(version, false) || version == "ff") return false;
  if (!hex_field(v.substr(3, kTraceIdSize), true) || !hex_field(v.substr(36, 16), true) ||
      !hex_field(v.substr(53, 2), false))
    return false;
  if (v.size() == kTraceparentSize) return true;
  // Longer: only a later version may add fields, after a '-'.
  return version != "00" && v[kTraceparentSize] == '-';
}

std::string_view trace_id_of(std::string_view traceparent) {
  return valid_traceparent(traceparent) ? traceparent.substr(3, kTraceIdSize) : std::string_view();
}

TraceParentGenerator::TraceParentGenerator(uint64_t seed) {
  for (auto& x : s_) x = splitmix64(seed);
}

uint64_t TraceParentGenerator::next64() {
  // xoshiro256** (Blackman, Vigna).
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::string_view TraceParentGenerator::next(std::array<char, kTraceparentSize>& buf) {
  uint64_t hi, lo, parent;
  do {
    hi = next64();
    lo = next64();
  } while (hi == 0 && lo == 0);
  do parent = next64();
  while (parent == 0);
  char* p = buf.data();
  p[0] = '0';
  p[1] = '0';
  p[2] = '-';
  put_hex(p + 3, hi);
  put_hex(p + 19, lo);
  p[35] = '-';
  put_hex(p + 36, parent);
  p[52] = '-';
  p[53] = '0';
  p[54] = '1';
  return std::string_view(buf.data(), kTraceparentSize);
}

TraceParentGenerator& TraceParentGenerator::for_this_thread() {
  thread_local TraceParentGenerator gen = [] {
    uint64_t seed[2] = {0, 0};
    if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed)) {
      // No entropy yet (early boot): distinct per thread and start, which is all ids need.
      seed[0] = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      seed[1] = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&seed));
    }
    TraceParentGenerator g(seed[0]);
    uint64_t more = seed[1];
    for (auto& x : g.s_) x ^= splitmix64(more);
    return g;
  }();
  return gen;
}

void append_decimal(std::string& out, uint64_t v) {
  char tmp[24];
  auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  out.append(tmp, static_cast<size_t>(r.ptr - tmp));
}

void append_forwarded_for(std::string& chain, std::string_view value) {
  value = trim_ows(value);
  if (value.empty()) return;
  if (!chain.empty()) chain.append(", ", 2);
  chain.append(value);
}

std::string_view forwarded_client(std::string_view chain, std::string_view peer, const net::CidrSet& trusted) {
  std::string_view client = peer;
  while (!chain.empty()) {
    size_t comma = chain.rfind(',');
    std::string_view entry = trim_ows(comma == std::string_view::npos ? chain : chain.substr(comma + 1));
    chain = comma == std::string_view::npos ? std::string_view() : chain.substr(0, comma);
    if (entry.empty()) continue;  // "a, , b": an empty list element (RFC 9110 §5.6.1)
    net::IpAddress a = net::parse_ip(entry);
    if (a.family == 0) return client;  // not an address: the trusted one to its right
    client = entry;
    if (!trusted.contains(a)) return client;
  }
  return client;
}

std::string& forwarded_for_scratch() {
  static thread_local std::string s;
  return s;
}

}  // namespace corral::proxy
