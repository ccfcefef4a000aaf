// CIDR ranges and sets ([[listener]] proxy_protocol_trusted, [proxy] trusted_proxies).
#include "common/net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

namespace corral::net {
namespace {

TEST(Cidr, ParsesRangesAndBareAddresses) {
  auto a = parse_cidr("10.0.0.0/8");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->prefix, 8);
  EXPECT_TRUE(a->contains(parse_ip("10.255.1.2")));
  EXPECT_FALSE(a->contains(parse_ip("11.0.0.1")));
  auto one = parse_cidr("192.0.2.7");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix, 32);
  EXPECT_TRUE(one->contains(parse_ip("192.0.2.7")));
  EXPECT_FALSE(one->contains(parse_ip("192.0.2.8")));
  auto v6 = parse_cidr("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(parse_ip("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(parse_ip("2001:db9::1")));
  EXPECT_FALSE(v6->contains(parse_ip("10.0.0.1")));  // another family
  auto odd = parse_cidr("172.16.0.0/12");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(parse_ip("172.31.255.255")));
  EXPECT_FALSE(odd->contains(parse_ip("172.32.0.0")));
  auto all = parse_cidr("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(parse_ip("203.0.113.1")));
  EXPECT_FALSE(all->contains(parse_ip("::1")));
  auto loop6 = parse_cidr("::1/128");
  ASSERT_TRUE(loop6);
  EXPECT_TRUE(loop6->contains(parse_ip("::1")));
}

TEST(Cidr, Ipv4MappedAddressesMatchIpv4Ranges) {
  auto a = parse_cidr("127.0.0.0/8");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->contains(parse_ip("::ffff:127.0.0.5")));
  auto mapped = parse_cidr("::ffff:10.0.0.0/104");
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->prefix, 8);
  EXPECT_TRUE(mapped->contains(parse_ip("10.9.9.9")));
  sockaddr_storage ss{};
  auto& s6 = reinterpret_cast<sockaddr_in6&>(ss);
  s6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
  CidrSet set({"127.0.0.1/32"});
  EXPECT_TRUE(set.contains(ss));
}

TEST(Cidr, RefusesWhatIsNotARange) {
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0/8",
                          "proxy.example", "10.1.2.3/8", "2001:db8::1/32", "10.0.0.0/0008", "::ffff:10.0.0.0/95",
                          "[::1]/128", "10.0.0.1:80"}) {
    auto c = parse_cidr(bad);
    EXPECT_FALSE(c) << bad;
    if (!c) {
      EXPECT_FALSE(c.error().context.empty()) << bad;
    }
  }
  auto c = parse_cidr("10.1.2.3/8");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().context.find("10.0.0.0/8"), std::string::npos) << c.error().context;
}

TEST(CidrSet, MatchesAnyOfItsRanges) {
  CidrSet s({"10.0.0.0/8", "192.0.2.7", "::1/128"});
  EXPECT_EQ(s.ranges().size(), 3u);
  EXPECT_TRUE(s.contains_text("10.1.1.1"));
  EXPECT_TRUE(s.contains_text("192.0.2.7"));
  EXPECT_TRUE(s.contains_text("::1"));
  EXPECT_FALSE(s.contains_text("192.0.2.8"));
  EXPECT_FALSE(s.contains_text("not an address"));
  EXPECT_FALSE(s.contains_text(""));
  EXPECT_TRUE(CidrSet().empty());
  EXPECT_FALSE(CidrSet().contains_text("10.0.0.1"));
}

}  // namespace
}  // namespace corral::net
