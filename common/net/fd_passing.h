#pragma once
// Sending and receiving one SEQPACKET message with file descriptors attached (SCM_RIGHTS).
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/base/unique_fd.h"

namespace corral::net {

/// Largest message the control channel carries (the SEQPACKET record size we allow).
inline constexpr size_t kMaxMessage = 1 << 20;
inline constexpr size_t kMaxFds = 64;

/// Sends one record with optional fds (not closed here). Blocking or not depends on the fd;
/// EAGAIN comes back as an Error with sys_errno == EAGAIN.
[[nodiscard]] Result<void> send_message(int fd, std::string_view data, const std::vector<int>& fds = {});

struct ReceivedMessage {
  std::string data;
  std::vector<UniqueFd> fds;
};

/// Receives one record. An orderly close is Errc::Closed; EAGAIN is an Error with
/// sys_errno == EAGAIN; a truncated record is Errc::Protocol.
[[nodiscard]] Result<ReceivedMessage> recv_message(int fd);

}  // namespace corral::net
