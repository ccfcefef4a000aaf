// Arbiter upkeep: what the supervisor checks every second besides signals and messages —
// runtime_dir and what lives in it by path, the workers' sockets, the workers' leftovers.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "common/base/strings.h"
#include "supervisor/arbiter.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
}  // namespace

void Arbiter::upkeep() {
  crash::Operation op("upkeep");
  if (phase_ != Phase::Running) return;
  for (auto& p : pools_) p->check_memory();
  check_runtime_dir();
  for (auto& p : pools_) p->check_sockets();
  note_leftovers(sweep_strays({}));
}

Result<void> Arbiter::prepare_runtime_dir() {
  const auto& dir = config_.supervisor.runtime_dir;
  if (auto r = make_dirs(dir, 0755); !r) return r;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail_sys("stat " + dir);
  runtime_dev_ = st.st_dev;
  runtime_ino_ = st.st_ino;
  // The proxy (another user when we are root) must enter runtime_dir to connect to the
  // sockets in it; the directory may predate us with a stricter mode, e.g. 0700.
  if (socket_gid_ != static_cast<gid_t>(-1) && st.st_uid == 0 &&
      (::chown(dir.c_str(), static_cast<uid_t>(-1), socket_gid_) != 0 ||
       ::chmod(dir.c_str(), (st.st_mode & 07777) | S_IXGRP) != 0)) {
    CORRAL_LOG(Warn, kTag) << sys_error("giving the proxy's group access to " + dir).message();
  }
  return {};
}

void Arbiter::check_runtime_dir() {
  if (phase_ != Phase::Running) return;
  const auto& dir = config_.supervisor.runtime_dir;
  std::vector<std::string> done;
  struct stat st {};
  const bool dir_there = ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  if (!dir_there || st.st_ino != runtime_ino_ || st.st_dev != runtime_dev_) {
    if (auto r = prepare_runtime_dir(); !r) {
      if (!runtime_dir_failing_) {
        CORRAL_LOG(Error, kTag) << "runtime_dir " << dir << " is gone and cannot be made again: " << r.error().message()
                                << "; corralctl and new workers need it (tried again every second)";
      }
      runtime_dir_failing_ = true;
      return;
    }
    runtime_dir_failing_ = false;
    done.push_back(std::string(dir_there ? "runtime_dir " + dir + " was replaced" : "runtime_dir " + dir + " was removed") +
                   " while corral runs: made it again");
  }
  // Tried again every second; a failure is logged at once, then once a minute.
  auto failed = [&](LogThrottle& limit, const std::string& what) {
    if (uint64_t held = 0; limit.allow(&held))
      done.push_back(what + (held ? " (" + std::to_string(held) + " more failures since the last line)" : ""));
  };
  if (!control_.intact()) {
    if (auto r = control_.rebind(); r) {
      done.push_back("control.sock bound again");
      control_sock_failures_.reset();
    } else {
      failed(control_sock_failures_, "control.sock cannot be bound again: " + r.error().message());
    }
  }
  const std::string temp = config_.body_temp_dir();
  if (struct stat ts {}; ::stat(temp.c_str(), &ts) != 0 && errno == ENOENT) {
    if (auto r = prepare_temp_dir(temp); r) {
      done.push_back("temp_dir " + temp + " made again");
      temp_dir_failures_.reset();
    } else {
      failed(temp_dir_failures_, "temp_dir " + temp + " cannot be made again (" + r.error().message() + ")");
    }
  }
  if (done.empty()) return;
  // One line for the event; each worker whose socket went with it says so when replaced.
  CORRAL_LOG(Error, kTag) << join(done, "; ");
}

std::optional<WorkerRef> Arbiter::worker_of(pid_t pid) const {
  for (auto& p : pools_)
    if (auto w = p->worker_of(pid)) return w;
  for (auto& p : retired_pools_)
    if (auto w = p->worker_of(pid)) return w;
  return std::nullopt;
}

std::vector<Arbiter::LeftoverNote> Arbiter::sweep_strays(const std::vector<WorkerRef>& exited) {
  crash::Operation op("looking for processes workers left behind");
  std::vector<pid_t> known;
  if (proxy_->pid() > 0) known.push_back(proxy_->pid());
  if (swap_ && swap_->candidate && swap_->candidate->pid() > 0) known.push_back(swap_->candidate->pid());
  for (auto& o : outgoing_)
    if (o->pid() > 0) known.push_back(o->pid());
  if (pid_t check = upgrade_check_pid(); check > 0) known.push_back(check);
  std::vector<WorkerRef> running;
  for (auto& p : pools_) p->append_running(running);
  for (auto& p : retired_pools_) p->append_running(running);
  for (auto& w : running) known.push_back(w.pid);
  std::erase_if(running, [&](const WorkerRef& w) {
    for (auto& x : exited)
      if (x.pid == w.pid) return true;
    return false;
  });
  std::vector<LeftoverNote> notes;
  for (auto& k : strays_.scan(known, running, exited)) {
    std::vector<std::string> procs;
    for (auto& [pid, cmd] : k.processes) procs.push_back(std::to_string(pid) + (cmd.empty() ? std::string() : " (" + cmd + ")"));
    const std::string list = join(procs, ", ");
    const std::string note = std::to_string(k.processes.size()) + " process(es) left running: " + list;
    if (k.owner.pid == 0) {
      // Which worker made them is not known: on no worker's death record, in the status.
      std::vector<std::string> makers;
      for (auto& w : k.makers)
        makers.push_back("app=" + w.app + " worker=" + std::to_string(w.worker) + " pid " + std::to_string(w.pid));
      const std::string line = note + "; made by one of the workers " + join(makers, ", ") + " (which one is not known); killed";
      CORRAL_LOG(Warn, kTag) << line;
      unattributed_leftovers_.push_back(line.substr(0, DeathLog::kMaxLine));
      while (unattributed_leftovers_.size() > kUnattributedKept) unattributed_leftovers_.pop_front();
      continue;
    }
    CORRAL_LOG(Warn, "app=" + k.owner.app + " worker=" + std::to_string(k.owner.worker))
        << "worker pid " << k.owner.pid << " left " << note << "; killed them";
    notes.push_back({k.owner.app, k.owner.pid, note + "; killed"});
  }
  return notes;
}

void Arbiter::note_leftovers(const std::vector<LeftoverNote>& notes) {
  for (auto& n : notes)
    if (AppPool* p = find_pool(n.app)) p->note_leftovers(n.pid, n.note);
}

}  // namespace corral::supervisor
