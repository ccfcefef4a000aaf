// AppPool's socket checks: a worker socket removed from runtime_dir, a worker that closed its
// listening socket. See check_sockets() in app_pool.h.
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/log.h"
#include "common/base/units.h"
#include "common/net/socket.h"
#include "supervisor/app_pool.h"
#include "supervisor/process_tree.h"

namespace corral::supervisor {
namespace {

// Connections wait unaccepted in the backlog of a socket we hold.
bool backlog_waiting(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Whether the worker's process group still has the socket open: Yes when one of them
// does; Unknown when none is seen to and the fds of some cannot be read (workers of another
// user, non-dumpable ones).
Holding worker_holds(pid_t pid, ino_t inode) {
  Holding h = holds_socket(pid, inode);
  if (h == Holding::Yes) return h;
  for (pid_t p : group_members(pid)) {
    if (p == pid) continue;
    const Holding ph = holds_socket(p, inode);
    if (ph == Holding::Yes) return ph;
    if (ph == Holding::Unknown) h = ph;
  }
  return h;
}

}  // namespace

int AppPool::check_sockets() {
  if (stopping_) return 0;
  int replaced = 0;
  // check_socket may add workers: iterate over a copy of the current ones.
  std::vector<WorkerSlot*> current;
  for (auto& s : slots_) current.push_back(s.get());
  for (WorkerSlot* s : current) replaced += check_socket(*s, false) ? 1 : 0;
  // A worker the proxy cannot reach whose replacement could not be made (its socket: runtime_dir
  // not there again yet) still serves: try again.
  if (replaced == 0 && std::any_of(slots_.begin(), slots_.end(), [](auto& s) {
        return s->unreachable() && s->state() == WorkerSlot::State::Ready;
      })) {
    ensure_count();
    retire_ready_ones();
  }
  return replaced;
}

bool AppPool::check_socket(WorkerSlot& s, bool refused) {
  if (stopping_ || s.retiring()) return false;
  const auto state = s.state();
  // The file: ours from the start, a self-binding worker's once it is ready.
  const bool path_known = s.path_inode != 0 && (!s.self_binds || state == WorkerSlot::State::Ready);
  if (path_known) {
    struct stat st {};
    const bool there = ::stat(s.socket_path().c_str(), &st) == 0;
    if (!there || st.st_ino != s.path_inode || st.st_dev != s.path_dev) {
      CORRAL_LOG(Warn, s.tag()) << "its socket " << s.socket_path()
                                << (there ? " was replaced by another file" : " was removed")
                                << "; replacing the worker with one on a new socket (requests wait in the queue meanwhile)";
      // The proxy cannot open connections to it: it takes nothing new from now on and
      // finishes what it holds over the connections already open.
      replace(s, "socket_removed");
      return true;
    }
  }
  if (state != WorkerSlot::State::Ready || s.pid <= 0 || s.hung() || s.term_sent) return false;
  if (s.listen_fd) {
    // Requests wait in the backlog of the socket we keep for it. Only when they keep waiting
    // is it worth reading /proc: a busy worker holds its socket.
    if (!backlog_waiting(s.listen_fd.get())) {
      s.waiting_checks = 0;
      return false;
    }
    if (++s.waiting_checks < 2) return false;
    const Holding h = worker_holds(s.pid, s.listen_inode);
    if (h == Holding::Yes) return false;
    if (h == Holding::Unknown) {
      // A busy worker with a backlog looks the same: never restart on a guess.
      if (s.waiting_checks == 2) {
        CORRAL_LOG(Debug, s.tag()) << "pid " << s.pid << ": connections wait on its socket and its fds cannot be read "
                                   << "from /proc (another user, or not dumpable); not checking whether it still listens";
      }
      return false;
    }
    restart_not_listening(s, "no process of it holds its listening socket any more while connections wait on it");
    return false;
  }
  if (refused) {
    // A self-binding worker: what the proxy saw, tried again from here.
    auto c = net::connect_unix(s.socket_path());  // taken or queued: fine
    if (!c && c.error().sys_errno == ECONNREFUSED)
      restart_not_listening(s, "connections to " + s.socket_path() + " are refused (it closed its socket)");
  }
  return false;
}

void AppPool::restart_not_listening(WorkerSlot& s, const std::string& why) {
  CORRAL_LOG(Error, s.tag()) << "pid " << s.pid << " does not listen any more: " << why
                             << "; restarting it (SIGTERM, SIGKILL after " << format_duration(s.config().kill_timeout)
                             << ")" << (s.listen_fd ? "; the waiting requests go to its next process" : "");
  restart_in_place(s, "socket_closed");
  on_pool_changed_();
}

void AppPool::append_running(std::vector<WorkerRef>& out) const {
  for (auto& s : slots_)
    if (s->pid > 0) out.push_back(WorkerRef{app_->name, s->index(), s->pid, s->listen_inode});
}

std::optional<WorkerRef> AppPool::worker_of(pid_t pid) const {
  for (auto& s : slots_)
    if (s->pid == pid) return WorkerRef{app_->name, s->index(), s->pid, s->listen_inode};
  return std::nullopt;
}

}  // namespace corral::supervisor
