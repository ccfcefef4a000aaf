#include "proxy/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

namespace corral::proxy {
namespace {

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr char kV2Sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr std::string_view kV2Signature(kV2Sig, sizeof kV2Sig);

// TLV types (PROXY protocol spec §2.2.x).
constexpr uint8_t kTlvAlpn = 0x01, kTlvAuthority = 0x02, kTlvCrc32c = 0x03, kTlvUniqueId = 0x05, kTlvSsl = 0x20;
constexpr uint8_t kSubSslVersion = 0x21;
constexpr uint8_t kClientSsl = 0x01;
constexpr size_t kMaxUniqueId = 128;
constexpr size_t kMaxAuthority = 255;

ProxyParseResult invalid(const char* why) { return {ProxyParse::Invalid, 0, why}; }

// `have` and `whole` agree on their common length.
bool is_prefix_of(std::string_view have, std::string_view whole) {
  size_t n = have.size() < whole.size() ? have.size() : whole.size();
  return have.substr(0, n) == whole.substr(0, n);
}

// A port: 1 to 5 digits, at most 65535, no leading zero (except "0" itself).
bool parse_port(std::string_view s, uint16_t& port) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

bool parse_v1_address(std::string_view s, int family, uint16_t port, sockaddr_storage& out) {
  char buf[INET6_ADDRSTRLEN];
  if (s.empty() || s.size() >= sizeof buf) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  out = {};
  if (family == AF_INET) {
    auto& a = reinterpret_cast<sockaddr_in&>(out);
    if (inet_pton(AF_INET, buf, &a.sin_addr) != 1) return false;
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    return true;
  }
  auto& a = reinterpret_cast<sockaddr_in6&>(out);
  if (inet_pton(AF_INET6, buf, &a.sin6_addr) != 1) return false;
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  return true;
}

ProxyParseResult parse_v1(std::string_view b, ProxyHeader& out) {
  // The CR of the closing CRLF is at index 105 at the latest (107 bytes in all).
  const size_t last_cr = kProxyV1MaxSize - 2;
  const size_t limit = b.size() < last_cr + 1 ? b.size() : last_cr + 1;
  size_t end = std::string_view::npos;
  for (size_t i = kV1Prefix.size(); i < limit; ++i) {
    char c = b[i];
    if (c == '\r') {
      if (i + 1 >= b.size()) return {ProxyParse::Incomplete, 0, ""};
      if (b[i + 1] != '\n') return invalid("v1: CR not followed by LF");
      end = i;
      break;
    }
    if (c == '\n') return invalid("v1: LF without CR");
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return invalid("v1: a control or non-ASCII byte");
  }
  if (end == std::string_view::npos) {
    if (b.size() > last_cr) return invalid("v1: no CRLF within 107 bytes");
    return {ProxyParse::Incomplete, 0, ""};
  }
  out = ProxyHeader{};
  out.version = 1;
  std::string_view line = b.substr(kV1Prefix.size(), end - kV1Prefix.size());
  std::string_view parts[6];
  size_t n = 0;
  while (n < 6) {
    size_t sp = line.find(' ');
    parts[n++] = line.substr(0, sp);
    if (sp == std::string_view::npos) {
      line = {};
      break;
    }
    line.remove_prefix(sp + 1);
  }
  if (parts[0] == "UNKNOWN") return {ProxyParse::Done, end + 2, ""};  // the rest is ignored (spec §2.1)
  int family = parts[0] == "TCP4" ? AF_INET : parts[0] == "TCP6" ? AF_INET6 : 0;
  if (!family) return invalid("v1: protocol is not TCP4, TCP6 or UNKNOWN");
  if (n != 5 || !line.empty()) return invalid("v1: not 'PROXY TCPn <src> <dst> <sport> <dport>'");
  uint16_t sport = 0, dport = 0;
  if (!parse_port(parts[3], sport) || !parse_port(parts[4], dport)) return invalid("v1: bad port");
  if (!parse_v1_address(parts[1], family, sport, out.source) ||
      !parse_v1_address(parts[2], family, dport, out.destination))
    return invalid("v1: address not of the protocol's family");
  out.has_addresses = true;
  return {ProxyParse::Done, end + 2, ""};
}

uint16_t be16(const unsigned char* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t crc32c(const unsigned char* p, size_t n, size_t skip_at) {
  // Castagnoli, reflected (0x82F63B78); the CRC field itself (4 bytes at skip_at) counts as zero.
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    unsigned char byte = (i >= skip_at && i < skip_at + 4) ? 0 : p[i];
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

bool plain_host_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxAuthority) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return false;
  return true;
}

// The SSL TLV's value: client (1), verify (4), then sub-TLVs that must frame exactly.
bool parse_ssl(const unsigned char* v, size_t n, ProxyHeader& out) {
  if (n < 5) return false;
  bool client_ssl = (v[0] & kClientSsl) != 0;
  size_t pos = 5;
  while (pos < n) {
    if (n - pos < 3) return false;
    uint8_t type = v[pos];
    size_t len = be16(v + pos + 1);
    pos += 3;
    if (len > n - pos) return false;
    if (type == kSubSslVersion) out.ssl_version = std::string_view(reinterpret_cast<const char*>(v + pos), len);
    pos += len;  // CN, cipher, algorithms and unknown sub-types: skipped
  }
  out.ssl = client_ssl;
  return true;
}

ProxyParseResult parse_v2(std::string_view b, ProxyHeader& out) {
  if (b.size() < 16) {
    // Still rule out what can be ruled out from the bytes there are.
    if (b.size() > 12 && (static_cast<unsigned char>(b[12]) >> 4) != 2) return invalid("v2: version is not 2");
    return {ProxyParse::Incomplete, 0, ""};
  }
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  if ((p[12] >> 4) != 2) return invalid("v2: version is not 2");
  const unsigned cmd = p[12] & 0x0f;
  if (cmd > 1) return invalid("v2: command is neither LOCAL nor PROXY");
  const unsigned fam = p[13];
  size_t addr_len = 0;
  switch (fam) {
    case 0x00: addr_len = 0; break;     // AF_UNSPEC
    case 0x11: case 0x12: addr_len = 12; break;   // TCP/UDP over IPv4
    case 0x21: case 0x22: addr_len = 36; break;   // TCP/UDP over IPv6
    case 0x31: case 0x32: addr_len = 216; break;  // AF_UNIX stream/datagram
    default: return invalid("v2: unknown address family or transport");
  }
  const size_t len = be16(p + 14);
  if (len > kProxyV2MaxPayload) return invalid("v2: longer than 4096 bytes after its head");
  if (len < addr_len) return invalid("v2: too short for its addresses");
  if (b.size() < 16 + len) return {ProxyParse::Incomplete, 0, ""};
  out = ProxyHeader{};
  out.version = 2;
  if (cmd == 1 && (fam == 0x12 || fam == 0x22)) return invalid("v2: UDP addresses on a TCP connection");
  if (cmd == 1 && (fam == 0x11 || fam == 0x21)) {
    const unsigned char* a = p + 16;
    if (fam == 0x11) {
      auto& s = reinterpret_cast<sockaddr_in&>(out.source);
      auto& d = reinterpret_cast<sockaddr_in&>(out.destination);
      s.sin_family = d.sin_family = AF_INET;
      std::memcpy(&s.sin_addr, a, 4);
      std::memcpy(&d.sin_addr, a + 4, 4);
      std::memcpy(&s.sin_port, a + 8, 2);  // network order on both sides
      std::memcpy(&d.sin_port, a + 10, 2);
    } else {
      auto& s = reinterpret_cast<sockaddr_in6&>(out.source);
      auto& d = reinterpret_cast<sockaddr_in6&>(out.destination);
      s.sin6_family = d.sin6_family = AF_INET6;
      std::memcpy(&s.sin6_addr, a, 16);
      std::memcpy(&d.sin6_addr, a + 16, 16);
      std::memcpy(&s.sin6_port, a + 32, 2);
      std::memcpy(&d.sin6_port, a + 34, 2);
    }
    out.has_addresses = true;
  }
  // TLVs: each inside the header; known ones of the right size.
  const size_t end = 16 + len;
  size_t pos = 16 + addr_len;
  while (pos < end) {
    if (end - pos < 3) return invalid("v2: truncated TLV");
    const uint8_t type = p[pos];
    const size_t vlen = be16(p + pos + 1);
    const size_t vpos = pos + 3;
    if (vlen > end - vpos) return invalid("v2: TLV runs past the header");
    const unsigned char* v = p + vpos;
    switch (type) {
      case kTlvAlpn:
        if (vlen == 0 || vlen > 255) return invalid("v2: ALPN TLV of a bad length");
        out.alpn = std::string_view(reinterpret_cast<const char*>(v), vlen);
        break;
      case kTlvAuthority: {
        std::string_view host(reinterpret_cast<const char*>(v), vlen);
        if (vlen == 0 || vlen > kMaxAuthority) return invalid("v2: AUTHORITY TLV of a bad length");
        if (plain_host_name(host)) out.authority = host;  // anything else is not kept
        break;
      }
      case kTlvCrc32c: {
        if (vlen != 4) return invalid("v2: CRC32C TLV is not 4 bytes");
        uint32_t want = (uint32_t{v[0]} << 24) | (uint32_t{v[1]} << 16) | (uint32_t{v[2]} << 8) | v[3];
        if (crc32c(p, end, vpos) != want) return invalid("v2: CRC32C mismatch");
        break;
      }
      case kTlvUniqueId:
        if (vlen > kMaxUniqueId) return invalid("v2: UNIQUE_ID TLV longer than 128 bytes");
        break;
      case kTlvSsl:
        if (!parse_ssl(v, vlen, out)) return invalid("v2: malformed SSL TLV");
        break;
      default: break;  // NOOP, NETNS and unknown types: skipped
    }
    pos = vpos + vlen;
  }
  return {ProxyParse::Done, end, ""};
}

}  // namespace

ProxyParseResult parse_proxy_header(std::string_view b, ProxyHeader& out) {
  if (b.empty()) return {ProxyParse::Incomplete, 0, ""};
  if (b[0] == 'P') {
    if (b.size() < kV1Prefix.size()) {
      if (!is_prefix_of(b, kV1Prefix)) return invalid("not a PROXY protocol header");
      return {ProxyParse::Incomplete, 0, ""};
    }
    if (b.substr(0, kV1Prefix.size()) != kV1Prefix) return invalid("not a PROXY protocol header");
    return parse_v1(b, out);
  }
  if (b[0] == '\r') {
    if (!is_prefix_of(b, kV2Signature)) return invalid("not a PROXY protocol header");
    if (b.size() < kV2Signature.size()) return {ProxyParse::Incomplete, 0, ""};
    return parse_v2(b, out);
  }
  return invalid("not a PROXY protocol header");
}

ProxyHeaderReader::Step ProxyHeaderReader::read(int fd) {
  static thread_local char buf[kProxyHeaderMaxSize];
  const size_t had = got_.size();
  if (had >= kProxyHeaderMaxSize) {  // parse() rules this out first; belt and braces
    error_ = "header too long";
    return Step::Invalid;
  }
  ssize_t n;
  do {
    n = ::recv(fd, buf, kProxyHeaderMaxSize - had, MSG_PEEK);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? Step::Again : Step::Closed;
  if (n == 0) return Step::Closed;
  std::string_view view(buf, static_cast<size_t>(n));
  if (had) {
    got_.append(buf, static_cast<size_t>(n));
    view = got_;
  }
  ProxyParseResult r = parse_proxy_header(view, header_);
  if (r.status == ProxyParse::Invalid) {
    error_ = r.error;
    return Step::Invalid;
  }
  // Incomplete: every byte seen belongs to the header; Done: take exactly up to its end.
  const size_t take = r.status == ProxyParse::Done ? r.size - had : static_cast<size_t>(n);
  ssize_t k;
  do {
    k = ::recv(fd, buf, take, 0);
  } while (k < 0 && errno == EINTR);
  if (k != static_cast<ssize_t>(take)) return Step::Closed;  // peeked bytes are there: cannot happen
  if (r.status == ProxyParse::Done) {
    more_ready_ = had + static_cast<size_t>(n) > r.size;
    header_.alpn = header_.authority = header_.ssl_version = {};  // they viewed the buffers
    got_.clear();
    got_.shrink_to_fit();
    return Step::Done;
  }
  if (!had) got_.assign(buf, take);
  return Step::Again;
}

}  // namespace corral::proxy
