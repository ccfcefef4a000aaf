#pragma once
// Socket addresses: parsing "host:port" / "[v6]:port" and formatting them back.
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace corral::net {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;

  int family() const { return storage.ss_family; }
  /// "127.0.0.1:8080", "[::1]:8443", "unix:/path".
  std::string to_string() const;
  /// The IP as text without port ("127.0.0.1", "::1"); empty for non-IP.
  std::string ip() const;
  uint16_t port() const;
};

/// Parses "1.2.3.4:80", "[::]:443", "localhost:80" is rejected (numeric only, no DNS).
/// Errors name what is wrong ("missing port", "port out of range").
[[nodiscard]] Result<SocketAddress> parse_address(std::string_view s);

/// Local or peer address of a socket.
[[nodiscard]] Result<SocketAddress> local_address(int fd);
[[nodiscard]] Result<SocketAddress> peer_address(int fd);

}  // namespace corral::net
