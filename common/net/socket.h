#pragma once
// Creating, binding and connecting sockets. All sockets are created CLOEXEC; "nonblocking"
// is explicit per call. Thread-safe (no shared state).
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "common/net/address.h"

namespace corral::net {

/// Binds and listens on a TCP address (SO_REUSEADDR; IPV6_V6ONLY for "[::]"), nonblocking.
[[nodiscard]] Result<UniqueFd> listen_tcp(const SocketAddress& addr, int backlog = 4096);

/// Removes a stale socket file at path, then binds and listens on a Unix stream socket,
/// nonblocking. mode is applied with chmod (e.g. 0660).
[[nodiscard]] Result<UniqueFd> listen_unix(const std::string& path, int backlog = 1024, int mode = 0660);

/// Starts a nonblocking connect to a Unix stream socket. EINPROGRESS/EAGAIN are not errors:
/// wait for writability and check connect_result().
[[nodiscard]] Result<UniqueFd> connect_unix(const std::string& path);
/// Blocking connect (for tools and tests).
[[nodiscard]] Result<UniqueFd> connect_unix_blocking(const std::string& path);

/// SO_ERROR of a socket after a nonblocking connect: 0 = connected.
int connect_result(int fd);

[[nodiscard]] Result<void> set_nonblocking(int fd, bool on = true);
[[nodiscard]] Result<void> set_cloexec(int fd, bool on = true);

/// Writes everything on a blocking fd, retrying on EINTR.
[[nodiscard]] Result<void> write_all(int fd, std::string_view data);

}  // namespace corral::net
