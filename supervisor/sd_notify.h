#pragma once
// systemd's readiness protocol without libsystemd: one datagram to $NOTIFY_SOCKET.
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace corral::supervisor {

/// Sends `state` ("READY=1", "STOPPING=1", "STATUS=...") to the socket named by
/// $NOTIFY_SOCKET: a path, or an abstract name written "@name". Does nothing and succeeds
/// when the variable is unset. Thread-safe.
[[nodiscard]] Result<void> sd_notify(std::string_view state);

/// Same, to an explicit socket name (for tests).
[[nodiscard]] Result<void> sd_notify_to(const std::string& socket_name, std::string_view state);

}  // namespace corral::supervisor
