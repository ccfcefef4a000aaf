#pragma once
// The sockets the supervisor owns: TCP listeners (bound here, possibly as root, and handed
// to the proxy) and the per-slot Unix sockets under runtime_dir. Called on the loop thread
// at start-up; the functions themselves have no shared state.
#include <sys/types.h>

#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "conf/config.h"

namespace corral::supervisor {

/// One bound TCP listener.
struct BoundListener {
  std::string address;  ///< as configured: "127.0.0.1:0"
  std::string bound;    ///< as bound: "127.0.0.1:41234" (port 0 resolved)
  UniqueFd fd;          ///< listening, nonblocking, CLOEXEC
};

/// Binds every [[listener]]. Fails on the first that cannot be bound (nothing is kept).
[[nodiscard]] Result<std::vector<BoundListener>> bind_listeners(const std::vector<conf::Listener>& listeners);

/// Binds the admin listener: "ip:port" (TCP) or a Unix socket path (mode 0660; a stale
/// socket file is replaced). `bound` is the bound address ("unix:" + path for a socket).
[[nodiscard]] Result<BoundListener> bind_admin(const std::string& spec);

/// mkdir -p with `mode` for the directories it creates.
[[nodiscard]] Result<void> make_dirs(const std::string& path, unsigned mode = 0755);

/// Removes the file at `path` only while it is the one that was bound there (device `dev`,
/// inode `ino`): a file that replaced it since (another process's socket, an operator's)
/// is left alone. True when it was removed.
bool remove_own_file(const std::string& path, dev_t dev, ino_t ino);

/// "<runtime_dir>/<app>.<slot>.sock".
std::string slot_socket_path(const std::string& runtime_dir, const std::string& app, int slot);

/// "<runtime_dir>/control.sock".
std::string control_socket_path(const std::string& runtime_dir);

}  // namespace corral::supervisor
