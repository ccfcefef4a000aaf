#include "supervisor/usage_sampler.h"

#include <pthread.h>
#include <signal.h>

namespace corral::supervisor {

namespace {
constexpr std::chrono::seconds kForgetAfter{10};
}  // namespace

UsageSampler& UsageSampler::instance() {
  static UsageSampler sampler;
  return sampler;
}

UsageSampler::UsageSampler() {
  // The thread takes no signal: the supervisor's loop handles them all.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  thread_ = std::thread([this] { run(); });
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

UsageSampler::~UsageSampler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    waiting_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void UsageSampler::ask_locked(pid_t pgid) {
  auto [it, added] = groups_.try_emplace(pgid);
  it->second.asked = std::chrono::steady_clock::now();
  if (added) urgent_ = true;
}

GroupUsage UsageSampler::usage(pid_t pgid) {
  if (pgid <= 0) return {};
  std::lock_guard lock(mu_);
  ask_locked(pgid);
  if (urgent_) wake_.notify_all();
  return groups_[pgid].usage;
}

void UsageSampler::refresh(const std::vector<pid_t>& pgids, ev::Loop& loop, std::function<void()> done) {
  {
    std::lock_guard lock(mu_);
    for (pid_t p : pgids)
      if (p > 0) ask_locked(p);
    waiting_.push_back({&loop, std::move(done)});
    urgent_ = true;
  }
  wake_.notify_all();
}

void UsageSampler::forget_refreshes() {
  std::lock_guard lock(mu_);
  waiting_.clear();
  ++forgotten_;  // and those of a sample under way
}

bool UsageSampler::wait_fresh(pid_t pgid, std::chrono::milliseconds timeout) {
  if (pgid <= 0) return false;
  std::unique_lock lock(mu_);
  ask_locked(pgid);
  // A sample under way may have begun before this call: wait for the one after it.
  const uint64_t want = groups_[pgid].samples + 2;
  urgent_ = true;
  wake_.notify_all();
  return sampled_.wait_for(lock, timeout, [&] {
    auto g = groups_.find(pgid);
    return g == groups_.end() || g->second.samples >= want;
  });
}

void UsageSampler::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, kEvery, [&] { return stop_ || urgent_; });
    if (stop_) break;
    urgent_ = false;
    // Refreshes asked for from here on wait for the next sample: this one may have read a
    // group before they asked.
    std::vector<Refresh> answering = std::move(waiting_);
    waiting_.clear();
    const uint64_t forgotten = forgotten_;
    const auto now = std::chrono::steady_clock::now();
    std::vector<pid_t> pgids;
    for (auto it = groups_.begin(); it != groups_.end();) {
      if (now - it->second.asked > kForgetAfter) {
        it = groups_.erase(it);
      } else {
        pgids.push_back(it->first);
        ++it;
      }
    }
    lock.unlock();
    std::vector<GroupUsage> got;
    got.reserve(pgids.size());
    for (pid_t pgid : pgids) got.push_back(group_usage(pgid));  // /proc, off the loop
    lock.lock();
    for (size_t i = 0; i < pgids.size(); ++i) {
      auto it = groups_.find(pgids[i]);
      if (it == groups_.end()) continue;
      it->second.usage = got[i];
      ++it->second.samples;
    }
    sampled_.notify_all();
    // Posted under the lock: once forget_refreshes() returns, none of these is posted.
    for (auto& r : answering)
      if (!stop_ && forgotten_ == forgotten) r.loop->post(std::move(r.done));
  }
}

}  // namespace corral::supervisor
