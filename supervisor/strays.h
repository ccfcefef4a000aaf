#pragma once
// Leftovers of workers. The supervisor is its children's subreaper (PR_SET_CHILD_SUBREAPER),
// so a process a worker forked away (a daemonizing double fork, a child that called setsid,
// a child still running when its worker died) becomes the supervisor's child instead of
// init's, and cannot outlive its worker unseen. Each such stray is tied, when first seen, to
// the workers that may have made it: the one whose process group it is in, or whose listening
// socket it holds; otherwise every worker alive then (and started before it) or just exited.
// Once all of them are
// gone it is killed (SIGKILL, with its process group and descendants) and reported, charged
// to its worker when that is known (process group, socket, or the only possible one), and
// to no worker otherwise. So a helper a running worker daemonized keeps running while
// that worker runs, and nothing serves a slot's socket after its worker died. A child no
// worker can have made (inherited across exec, already there at start(), or an orphan handed
// to the supervisor as PID 1 of a container while no worker ran) is left alone. Loop-affine.
#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace corral::supervisor {

/// A worker process as the tracker sees it.
struct WorkerRef {
  std::string app;
  int worker = 0;     ///< worker id
  pid_t pid = 0;      ///< its process (and process group)
  ino_t socket = 0;   ///< sockfs inode of the listening socket the supervisor keeps for it; 0 = none
};

class Strays {
 public:
  /// Notes the processes that are already the caller's children (inherited across exec):
  /// never strays. Call once, before the first worker starts.
  void start();

  /// Processes killed together, charged to one worker, or to none (owner.pid == 0) when
  /// several may have made them.
  struct Killed {
    WorkerRef owner;       ///< pid 0: which worker made them is not known (see makers)
    bool certain = false;  ///< tied to this worker alone (process group or socket), not guessed
    std::vector<std::pair<pid_t, std::string>> processes;  ///< pid, command line
    std::vector<WorkerRef> makers;  ///< owner not known: the workers that may have made them
  };

  /// Looks at the supervisor's children. known: the ones it started (proxy, workers);
  /// running: workers alive now; exited: workers reaped since the last scan. Kills the
  /// strays whose possible makers are all gone and returns them.
  std::vector<Killed> scan(const std::vector<pid_t>& known, const std::vector<WorkerRef>& running,
                           const std::vector<WorkerRef>& exited);
  /// Children left alone: there at start(), or no worker can have made them.
  size_t ignored() const { return ignored_.size(); }
  /// The children left alone (pid → start time in clock ticks), for a new supervisor image
  /// (upgrade in place): it calls restore_ignored() instead of start(), so the workers it
  /// adopts are not taken for inherited children.
  const std::map<pid_t, unsigned long long>& ignored_children() const { return ignored_; }
  void restore_ignored(std::map<pid_t, unsigned long long> ignored) { ignored_ = std::move(ignored); }

 private:
  struct Stray {
    unsigned long long start_ticks = 0;
    std::vector<WorkerRef> owners;
    bool certain = false;
  };
  std::map<pid_t, Stray> strays_;
  std::map<pid_t, unsigned long long> ignored_;  ///< pid → start_ticks (pid reuse check)
};

}  // namespace corral::supervisor
