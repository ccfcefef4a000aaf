#include "supervisor/strays.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "common/base/log.h"
#include "supervisor/process_tree.h"

namespace corral::supervisor {

void Strays::start() {
  for (pid_t pid : own_children())
    if (auto e = read_proc_entry(pid)) ignored_[pid] = e->start_ticks;
}

std::vector<Strays::Killed> Strays::scan(const std::vector<pid_t>& known, const std::vector<WorkerRef>& running,
                                         const std::vector<WorkerRef>& exited) {
  std::vector<Killed> out;
  const std::set<pid_t> ours(known.begin(), known.end());
  std::set<pid_t> alive_workers;
  for (auto& w : running) alive_workers.insert(w.pid);
  std::vector<WorkerRef> candidates = running;
  candidates.insert(candidates.end(), exited.begin(), exited.end());
  // When each running worker started, read once and only when a new stray needs it: a
  // process cannot descend from a worker that started after it.
  std::map<pid_t, unsigned long long> started;
  auto started_before = [&](const WorkerRef& w, unsigned long long stray_start) {
    if (!alive_workers.count(w.pid)) return true;  // exited: /proc no longer says
    auto it = started.find(w.pid);
    if (it == started.end()) {
      auto e = read_proc_entry(w.pid);
      it = started.emplace(w.pid, e ? e->start_ticks : 0).first;
    }
    return it->second <= stray_start;
  };

  std::map<pid_t, Stray> now;
  std::map<pid_t, unsigned long long> ignored;
  for (pid_t pid : own_children()) {
    if (ours.count(pid)) continue;
    auto e = read_proc_entry(pid);
    if (!e || e->state == 'Z') continue;  // reaped by the caller's wait loop
    if (auto it = ignored_.find(pid); it != ignored_.end() && it->second == e->start_ticks) {
      ignored.emplace(pid, e->start_ticks);
      continue;
    }
    auto it = strays_.find(pid);
    if (it != strays_.end() && it->second.start_ticks == e->start_ticks) {
      now.emplace(pid, std::move(it->second));
      continue;
    }
    Stray s;
    s.start_ticks = e->start_ticks;
    for (auto& w : candidates)
      if (e->pgrp == w.pid || holds_socket(pid, w.socket) == Holding::Yes) {
        s.owners = {w};
        s.certain = true;
        break;
      }
    if (!s.certain)
      for (auto& w : candidates)
        if (started_before(w, e->start_ticks)) s.owners.push_back(w);
    if (s.owners.empty()) {
      // No worker ran before it: not a worker's leftover (an orphan handed to us as PID 1,
      // a child of what exec'd us). Not ours to kill.
      CORRAL_LOG(Debug, "supervisor") << "pid " << pid << " (" << proc_cmdline(pid)
                                      << ") is a child no worker can have made; leaving it alone";
      ignored.emplace(pid, e->start_ticks);
      continue;
    }
    now.emplace(pid, std::move(s));
  }
  strays_.clear();
  ignored_ = std::move(ignored);

  for (auto& [pid, s] : now) {
    const bool maker_alive = std::any_of(s.owners.begin(), s.owners.end(),
                                         [&](const WorkerRef& w) { return alive_workers.count(w.pid) > 0; });
    if (maker_alive) {
      strays_.emplace(pid, std::move(s));
      continue;
    }
    // Charged to a worker only when it is the one that made it (process group, socket) or the
    // only one that can have; otherwise to nobody, with the workers that may have made it.
    WorkerRef owner;  // pid 0: not known
    if (s.certain || s.owners.size() == 1) owner = s.owners.front();  // not empty: those are ignored
    auto group = std::find_if(out.begin(), out.end(), [&](const Killed& k) { return k.owner.pid == owner.pid; });
    if (group == out.end()) {
      out.push_back(Killed{owner, s.certain, {}, {}});
      group = out.end() - 1;
    }
    if (owner.pid == 0)
      for (auto& w : s.owners)
        if (std::none_of(group->makers.begin(), group->makers.end(), [&](const WorkerRef& x) { return x.pid == w.pid; }))
          group->makers.push_back(w);
    // What it started goes with it: its descendants, and its process group when it leads
    // one of its own (never ours or a running worker's).
    // Its descendants are not our children: one may exit and its pid go to another process
    // before the signal, so each is signalled only while it is the process seen.
    const std::vector<ProcEntry> victims = descendants(pid);
    group->processes.emplace_back(pid, proc_cmdline(pid));
    for (auto& d : victims) group->processes.emplace_back(d.pid, proc_cmdline(d.pid));
    signal_if_same(pid, s.start_ticks, SIGKILL);
    for (auto& d : victims) signal_if_same(d.pid, d.start_ticks, SIGKILL);
    if (auto e = read_proc_entry(pid); e && e->pgrp == pid && e->pgrp != ::getpgrp() && !alive_workers.count(e->pgrp))
      ::kill(-e->pgrp, SIGKILL);
  }
  return out;
}

}  // namespace corral::supervisor
