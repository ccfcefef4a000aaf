#include "common/net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "common/base/strings.h"

namespace corral::net {
namespace {

IpAddress from_v6(const uint8_t* b) {
  IpAddress a;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, kMapped, 12) == 0) {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), b + 12, 4);
    return a;
  }
  a.family = AF_INET6;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

int bits_of(int family) { return family == AF_INET ? 32 : 128; }

}  // namespace

IpAddress parse_ip(std::string_view text) {
  IpAddress a;
  char buf[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof buf) return a;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, buf, &v4) != 1) return a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) != 1) return a;
  return from_v6(v6.s6_addr);
}

IpAddress ip_of(const sockaddr_storage& ss) {
  IpAddress a;
  if (ss.ss_family == AF_INET) {
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, 4);
  } else if (ss.ss_family == AF_INET6) {
    a = from_v6(reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr.s6_addr);
  }
  return a;
}

bool Cidr::contains(const IpAddress& a) const {
  if (a.family != base.family || a.family == 0) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a.bytes.data(), base.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[static_cast<size_t>(full)] & mask) == base.bytes[static_cast<size_t>(full)];
}

Result<Cidr> parse_cidr(std::string_view text) {
  auto fail = [&](std::string why) { return tl::unexpected(Error{Errc::InvalidInput, 0, std::move(why)}); };
  std::string_view addr = text, len;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
    if (len.empty()) return fail("has nothing after '/'");
  }
  Cidr c;
  // Written as IPv6, an IPv4-mapped range stays IPv6 text here: parse it as such and keep
  // the mapped form IPv4 (with the prefix moved down by 96 bits).
  c.base = parse_ip(addr);
  if (c.base.family == 0) return fail(addr == text ? "is not an IPv4 or IPv6 address" : "does not start with an IPv4 or IPv6 address");
  const bool mapped = c.base.family == AF_INET && addr.find(':') != std::string_view::npos;
  const int max = mapped ? 128 : bits_of(c.base.family);
  int prefix = max;
  if (!len.empty()) {
    auto n = parse_decimal(len);
    if (!n || len.size() > 3 || *n > static_cast<uint64_t>(max))
      return fail("has a prefix length that is not a number from 0 to " + std::to_string(max));
    prefix = static_cast<int>(*n);
  }
  if (mapped) {
    if (prefix < 96) return fail("is IPv4-mapped with a prefix length under 96");
    prefix -= 96;
  }
  c.prefix = prefix;
  // Host bits set: refuse rather than guess which range was meant.
  const int bits = bits_of(c.base.family);
  for (int i = prefix; i < bits; ++i) {
    if (c.base.bytes[static_cast<size_t>(i / 8)] & (0x80 >> (i % 8))) {
      IpAddress net = c.base;
      for (int j = prefix; j < bits; ++j) net.bytes[static_cast<size_t>(j / 8)] &= static_cast<uint8_t>(~(0x80 >> (j % 8)));
      char buf[INET6_ADDRSTRLEN] = {0};
      inet_ntop(net.family, net.bytes.data(), buf, sizeof buf);
      return fail("has bits set after its prefix length (did you mean " + std::string(buf) + "/" +
                  std::to_string(prefix) + "?)");
    }
  }
  return c;
}

CidrSet::CidrSet(const std::vector<std::string>& texts) {
  for (const auto& t : texts)
    if (auto c = parse_cidr(t)) ranges_.push_back(*c);
}

bool CidrSet::contains(const IpAddress& a) const {
  for (const auto& r : ranges_)
    if (r.contains(a)) return true;
  return false;
}

}  // namespace corral::net
