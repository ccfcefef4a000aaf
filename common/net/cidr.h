#pragma once
// Address ranges in CIDR notation ("10.0.0.0/8", "2001:db8::/32", a bare address = one host)
// and sets of them, for the lists of trusted peers: [[listener]] proxy_protocol_trusted and
// [proxy] trusted_proxies. IPv4-mapped IPv6 addresses ("::ffff:10.1.2.3", what a dual-stack
// socket reports for an IPv4 peer) match IPv4 ranges. Pure data and pure functions;
// thread-safe once built.
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace corral::net {

/// An IP address in a family-neutral form: IPv4 as its 4 bytes, IPv6 as 16.
struct IpAddress {
  int family = 0;  ///< AF_INET, AF_INET6; 0 = none
  std::array<uint8_t, 16> bytes{};
};

/// "10.1.2.3" or "2001:db8::1" (no brackets, no port, no zone); an IPv4-mapped IPv6 address
/// becomes IPv4. Family 0 when `text` is not an address.
IpAddress parse_ip(std::string_view text);
/// The address of a socket address (IPv4-mapped IPv6 as IPv4); family 0 for other families.
IpAddress ip_of(const sockaddr_storage& ss);

/// One range: the first `prefix` bits of `base` (the bits after them are zero).
struct Cidr {
  IpAddress base;
  int prefix = 0;
  bool contains(const IpAddress& a) const;
  bool operator==(const Cidr& o) const { return base.family == o.base.family && base.bytes == o.base.bytes && prefix == o.prefix; }
};

/// Parses "a.b.c.d/n" (n 0..32), "v6/n" (n 0..128) or a bare address (/32, /128). Host bits
/// set after the prefix are an error ("10.1.2.3/8": did you mean 10.0.0.0/8?), as a typo
/// there usually means the wrong range. The error's context says what is wrong, as a
/// predicate of the text ("is not an IPv4 or IPv6 address").
[[nodiscard]] Result<Cidr> parse_cidr(std::string_view text);

/// A list of ranges; contains() is a linear scan (lists are short: a balancer's addresses).
class CidrSet {
 public:
  CidrSet() = default;
  /// Every entry must parse (the config loader checked them); one that does not is skipped.
  explicit CidrSet(const std::vector<std::string>& texts);
  bool empty() const { return ranges_.empty(); }
  bool contains(const IpAddress& a) const;
  bool contains(const sockaddr_storage& ss) const { return contains(ip_of(ss)); }
  /// The text form of an address ("10.1.2.3"); false when it is not an address.
  bool contains_text(std::string_view ip) const { return contains(parse_ip(ip)); }
  const std::vector<Cidr>& ranges() const { return ranges_; }

 private:
  std::vector<Cidr> ranges_;
};

}  // namespace corral::net
