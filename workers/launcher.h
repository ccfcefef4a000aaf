#pragma once
// The one way corral starts a child process (h2o h2o_spawnp, gunicorn spawn_worker):
// fork + exec with a new process group, a parent-death signal, a clean environment plus
// the caller's variables, a working directory, an explicit fd map (everything else is
// closed), stdout/stderr on pipes, signal mask and dispositions reset, and exec failure
// reported synchronously through a CLOEXEC pipe.
//
// Launcher is the seam the supervisor's policy code is tested through (a fake records
// spawn requests); SystemLauncher is the real thing.
#include <sys/types.h>

#include <sys/resource.h>

#include <csignal>
#include <string>
#include <utility>
#include <vector>

#include "common/base/result.h"
#include "common/base/unique_fd.h"

namespace corral::workers {

/// The PATH every child gets (the environment is otherwise clean).
inline constexpr const char* kChildPath = "/usr/local/bin:/usr/bin:/bin";

/// Maps a parent fd onto a child fd number (e.g. a listening socket onto 3).
struct FdMap {
  int parent_fd = -1;  ///< not closed by the launcher; the caller keeps it
  int child_fd = -1;
};

/// One resource limit set in the child (soft = hard = value).
struct RLimit {
  int resource = RLIMIT_NOFILE;  ///< RLIMIT_NOFILE, RLIMIT_NPROC, RLIMIT_AS, ...
  rlim_t value = RLIM_INFINITY;
};

/// What to start and how.
struct LaunchSpec {
  /// argv[0] is the program: used as is when it contains '/', else searched in kChildPath.
  std::vector<std::string> argv;
  /// Added to the clean environment (PATH=kChildPath); a later entry wins over an earlier
  /// one and over PATH.
  std::vector<std::pair<std::string, std::string>> env;
  /// Pass the supervisor's own environment instead of the clean one (the proxy: it is our
  /// own binary and shares our settings, e.g. sanitizer options). `env` is still added.
  bool inherit_environment = false;
  /// Working directory; empty = the parent's.
  std::string cwd;
  /// fds the child receives; every other fd above 2 is closed. stdin is /dev/null unless
  /// mapped here.
  std::vector<FdMap> fds;
  /// Set LISTEN_FDS=<number of fds mapped to 3, 4, ...> and LISTEN_PID=<child pid> (the
  /// systemd socket-activation convention), the pid being filled in after fork.
  bool listen_fds = false;
  /// Capture stdout and stderr through pipes (Child::stdout_fd/stderr_fd); false = inherit ours.
  bool capture_output = true;
  /// Signal the child gets when the supervisor dies (PR_SET_PDEATHSIG).
  int parent_death_signal = SIGTERM;
  /// Identity of the child (needs root): supplementary groups = {gid}, then setgid, then
  /// setuid. (uid_t)-1 / (gid_t)-1 = unchanged.
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  /// Set before the identity change (so a limit above the unprivileged hard limit works).
  std::vector<RLimit> rlimits;
  /// File mode creation mask; -1 = inherit.
  int umask = -1;
};

/// A started child. The child runs in its own process group, whose id is `pid`.
struct Child {
  pid_t pid = -1;
  UniqueFd stdout_fd;  ///< read end, nonblocking, CLOEXEC; empty unless capture_output
  UniqueFd stderr_fd;
};

/// Replaces every "{socket}" in argv and env values by `path`. Returns true when at least one
/// was found: then the app binds `path` itself and gets no inherited socket (DESIGN.md,
/// "Socket hand-over"). Pure; thread-safe.
bool substitute_socket(LaunchSpec& spec, const std::string& path);

/// Starts processes. Implementations are used from one thread (the supervisor's loop).
class Launcher {
 public:
  virtual ~Launcher() = default;
  /// Starts spec. Returns the child once exec succeeded; on failure (fork, pipe, chdir or
  /// exec in the child) an Error with sys_errno set and context naming the step
  /// ("exec /opt/app: No such file"); a child that failed is already reaped.
  [[nodiscard]] virtual Result<Child> spawn(const LaunchSpec& spec) = 0;
};

/// fork/exec launcher. The parent blocks only until the child has exec'd (or failed).
class SystemLauncher final : public Launcher {
 public:
  [[nodiscard]] Result<Child> spawn(const LaunchSpec& spec) override;
};

}  // namespace corral::workers
