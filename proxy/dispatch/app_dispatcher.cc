#include "proxy/dispatch/app_dispatcher.h"

#include <algorithm>
#include <utility>

namespace corral::proxy {

// ---- Lease ----

Lease::Lease(Lease&& o) noexcept
    : dispatcher_(std::move(o.dispatcher_)),
      slot_(o.slot_),
      generation_(o.generation_),
      path_(std::move(o.path_)),
      index_(o.index_),
      ticket_(std::exchange(o.ticket_, 0)),
      granted_(o.granted_),
      mark_(o.mark_) {}

Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    release();
    dispatcher_ = std::move(o.dispatcher_);
    slot_ = o.slot_;
    generation_ = o.generation_;
    path_ = std::move(o.path_);
    index_ = o.index_;
    ticket_ = std::exchange(o.ticket_, 0);
    granted_ = o.granted_;
    mark_ = o.mark_;
  }
  return *this;
}

Lease::~Lease() { release(); }

void Lease::describe(const RequestRef& r) {
  if (!dispatcher_ || ticket_ != 0) return;
  ticket_ = dispatcher_->describe(slot_, generation_, r);
}

void Lease::release_as(int kind) {
  if (!dispatcher_) return;
  // Moved out first: release() may run a waiter's grant, which must see this lease as gone.
  auto d = std::move(dispatcher_);
  dispatcher_.reset();
  d->release(slot_, generation_, std::exchange(ticket_, 0), static_cast<AppDispatcher::ReleaseKind>(kind), granted_,
             std::exchange(mark_, Mark::Request));
}

void Lease::to_tunnel() {
  if (!dispatcher_ || mark_ == Mark::Held || mark_ == Mark::Moved) return;
  mark_ = dispatcher_->to_tunnel(slot_, generation_, mark_, granted_);
}

void Lease::release() { release_as(static_cast<int>(AppDispatcher::ReleaseKind::Done)); }
void Lease::release_lost() { release_as(static_cast<int>(AppDispatcher::ReleaseKind::Lost)); }
void Lease::release_failed_connect() { release_as(static_cast<int>(AppDispatcher::ReleaseKind::FailedConnect)); }
void Lease::release_hung() { release_as(static_cast<int>(AppDispatcher::ReleaseKind::Hung)); }

// ---- AppDispatcher ----

std::shared_ptr<AppDispatcher> AppDispatcher::create(Settings s) {
  return std::shared_ptr<AppDispatcher>(new AppDispatcher(std::move(s)));
}

AppDispatcher::AppDispatcher(Settings s) : settings_(std::move(s)), tunnel_bytes_(settings_.threads) {}

void AppDispatcher::update_settings(uint32_t queue_size) {
  std::lock_guard<std::mutex> g(mu_);
  settings_.queue_size = queue_size;
}

void AppDispatcher::set_max_tunnels(uint32_t max_tunnels) {
  std::vector<std::pair<std::shared_ptr<Waiter>, Lease>> grants;
  {
    std::lock_guard<std::mutex> g(mu_);
    max_tunnels_ = max_tunnels;
    // A larger bound may let queued upgrades go.
    grant_queued_locked(std::chrono::steady_clock::now(), grants);
  }
  for (auto& [w, l] : grants) w->grant(std::move(l));
  flush_events();
}

void AppDispatcher::set_observer(Observer o) {
  std::lock_guard<std::mutex> g(mu_);
  observer_ = std::move(o);
}

void AppDispatcher::set_failing(bool failing) {
  std::lock_guard<std::mutex> g(mu_);
  failing_ = failing;
}

bool AppDispatcher::draining_serve_locked() const { return accepting_live_ == 0; }

void AppDispatcher::note_idle_locked(SlotState& s) {
  // A worker with open tunnels is not idle: it is stopped when the last one closes (or when
  // the supervisor's graceful_timeout passes).
  if (s.accepting || s.removed || s.in_flight > 0 || s.tunnels > 0 || s.tunnel_reserved > 0 || s.drained_reported)
    return;
  // Nor is a draining worker that still has requests queued for it to serve.
  if (!queue_.empty() && !s.hung && draining_serve_locked()) return;
  s.drained_reported = true;
  if (draining_unreported_ > 0) --draining_unreported_;
  events_.push_back(control::SlotEvent{settings_.app, s.slot, s.generation, control::SlotEvent::Kind::Drained, s.requests});
}

void AppDispatcher::note_idle_all_locked() {
  // Only a draining slot with no Drained event out can get one.
  if (draining_unreported_ == 0) return;
  for (auto& s : slots_) note_idle_locked(s);
}

void AppDispatcher::recount_locked() {
  accepting_live_ = 0;
  draining_unreported_ = 0;
  for (auto& s : slots_) {
    s.carried = 0;
    if (live(s)) ++accepting_live_;
    if (!s.accepting && !s.removed && !s.drained_reported) ++draining_unreported_;
  }
  for (const auto& r : slots_) {
    if (!r.removed || r.in_flight == 0) continue;
    for (auto& s : slots_)
      if (!s.removed && s.path == r.path) s.carried += r.in_flight;
  }
}

void AppDispatcher::drop_in_flight_locked(size_t i) {
  SlotState& s = slots_[i];
  if (s.in_flight == 0) return;
  --s.in_flight;
  if (!s.removed) return;
  for (auto& o : slots_)
    if (!o.removed && o.carried > 0 && o.path == s.path) --o.carried;
}

void AppDispatcher::flush_events() {
  std::vector<control::SlotEvent> events;
  Observer observer;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (events_.empty()) return;
    events.swap(events_);
    observer = observer_;
  }
  if (!observer) return;
  for (auto& e : events) observer(std::move(e));
}

int AppDispatcher::load_locked(size_t i) const {
  const SlotState& s = slots_[i];
  return s.in_flight + s.carried;
}

int AppDispatcher::pick_locked(std::chrono::steady_clock::time_point now, bool tunnel) {
  const size_t n = slots_.size();
  if (n == 0) return -1;
  int best = -1;
  int best_load = 0;
  const bool draining_serve = draining_serve_locked();
  // Least in flight wins; among equals, the first after the round-robin cursor, so idle
  // workers share sequential traffic instead of slot 0 taking all of it.
  // (One division, not one per slot: the cursor is stepped and wrapped by hand.)
  size_t i = rr_ % n;
  for (size_t k = 0; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    const SlotState& s = slots_[i];
    if ((!s.accepting && !draining_serve) || s.removed || s.hung) continue;
    const int load = load_locked(i);
    if (load >= s.concurrency) continue;
    if (s.down_until > now) continue;
    if (tunnel && static_cast<uint32_t>(s.tunnels + s.tunnel_reserved) >= max_tunnels_) continue;
    if (best < 0 || load < best_load) {
      best = static_cast<int>(i);
      best_load = load;
      if (best_load == 0) break;
    }
  }
  if (best >= 0) rr_ = static_cast<size_t>(best) + 1;
  return best;
}

Lease AppDispatcher::make_lease_locked(int index, std::chrono::steady_clock::time_point now, bool tunnel) {
  SlotState& s = slots_[static_cast<size_t>(index)];
  ++s.in_flight;
  if (tunnel) ++s.tunnel_reserved;
  ++s.requests;
  if (++in_flight_ > totals_.peak_in_flight) totals_.peak_in_flight = in_flight_;
  if (s.max_requests > 0 && s.requests >= s.max_requests && !s.max_reported) {
    s.max_reported = true;
    events_.push_back(
        control::SlotEvent{settings_.app, s.slot, s.generation, control::SlotEvent::Kind::MaxRequests, s.requests});
  }
  auto& mx = max_seen_[static_cast<size_t>(index)];
  if (static_cast<uint64_t>(s.in_flight) > mx) mx = static_cast<uint64_t>(s.in_flight);
  Lease l;
  l.dispatcher_ = shared_from_this();
  l.slot_ = s.slot;
  l.generation_ = s.generation;
  l.path_ = paths_[static_cast<size_t>(index)];
  l.index_ = static_cast<size_t>(index);
  l.granted_ = now;
  l.mark_ = tunnel ? Lease::Mark::Reserved : Lease::Mark::Request;
  return l;
}

void AppDispatcher::grant_queued_locked(std::chrono::steady_clock::time_point now,
                                        std::vector<std::pair<std::shared_ptr<Waiter>, Lease>>& grants) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const bool tunnel = it->tunnel && max_tunnels_ > 0;
    int i = pick_locked(now, tunnel);
    if (i < 0) {
      // No free request slot: nothing behind can go either. No tunnel place: plain
      // requests behind this upgrade may still go.
      if (!tunnel) break;
      ++it;
      continue;
    }
    ++totals_.queued;
    if (now > it->since) totals_.queue += now - it->since;
    grants.emplace_back(std::move(it->waiter), make_lease_locked(i, now, tunnel));
    if (it->tunnel) --queued_tunnels_;
    it = queue_.erase(it);
  }
}

void AppDispatcher::erase_slot_locked(size_t i) {
  slots_.erase(slots_.begin() + static_cast<long>(i));
  paths_.erase(paths_.begin() + static_cast<long>(i));
  max_seen_.erase(max_seen_.begin() + static_cast<long>(i));
}

AppDispatcher::Outcome AppDispatcher::acquire(const std::shared_ptr<Waiter>& waiter, Lease& out, bool upgrade) {
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> g(mu_);
  const bool tunnel = upgrade && max_tunnels_ > 0;
  // FIFO fairness: a newcomer never overtakes queued waiters, except upgrades that wait for
  // a tunnel place (they could not use a free request slot anyway).
  if (queue_.size() == queued_tunnels_) {
    int i = pick_locked(now, tunnel);
    if (i >= 0) {
      out = make_lease_locked(i, now, tunnel);
      const bool events = !events_.empty();
      g.unlock();
      if (events) flush_events();
      return Outcome::Granted;
    }
  }
  if (failing_) {
    // Crash-looping app with nothing up: 503 now rather than after queue_timeout.
    if (accepting_live_ == 0) {
      ++totals_.rejected;
      return Outcome::NoWorkers;
    }
  }
  if (queue_.size() >= settings_.queue_size) {
    bool any_usable = false;
    for (auto& s : slots_) any_usable |= (s.accepting && !s.removed);
    ++totals_.rejected;
    return any_usable ? Outcome::QueueFull : Outcome::NoWorkers;
  }
  queue_.push_back(Queued{waiter, now, tunnel});
  if (tunnel) ++queued_tunnels_;
  return Outcome::Queued;
}

bool AppDispatcher::cancel(const Waiter* waiter, bool timed_out) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> g(mu_);
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Queued& q) { return q.waiter.get() == waiter; });
    if (it == queue_.end()) return false;
    ++totals_.queued;
    if (now > it->since) totals_.queue += now - it->since;
    if (timed_out) ++totals_.rejected;
    if (it->tunnel) --queued_tunnels_;
    queue_.erase(it);
    // An emptied queue may leave a draining worker idle.
    note_idle_all_locked();
  }
  flush_events();
  return true;
}

uint64_t AppDispatcher::describe(int slot, uint64_t generation, const RequestRef& r) {
  std::string_view path = r.path.substr(0, RequestInfo::kMaxPath);
  std::lock_guard<std::mutex> g(mu_);
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = static_cast<uint32_t>(active_.size());
    active_.emplace_back();
  }
  Tracked& tr = active_[i];
  tr.slot = slot;
  tr.generation = generation;
  tr.info.id.assign(r.id);
  tr.info.trace_id.assign(r.trace_id);
  tr.info.method.assign(r.method);
  tr.info.path.assign(path);
  tr.info.start = r.start;
  tr.in_use = true;
  if (++tr.serial == 0) tr.serial = 1;  // a ticket is never 0
  return static_cast<uint64_t>(tr.serial) << 32 | i;
}

std::vector<SlotRequest> AppDispatcher::requests_of(int slot, uint64_t generation) const {
  std::vector<SlotRequest> out;
  const auto now = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return b > a ? std::chrono::duration_cast<std::chrono::milliseconds>(b - a) : std::chrono::milliseconds{0};
  };
  std::lock_guard<std::mutex> g(mu_);
  for (const auto& tr : active_)
    if (tr.in_use && tr.slot == slot && tr.generation == generation)
      out.push_back(SlotRequest{tr.info, since(tr.info.start, now), "in_flight"});
  for (const auto& tr : lost_)
    if (tr.slot == slot && tr.generation == generation && tr.keep_until > now)
      out.push_back(SlotRequest{tr.info, since(tr.info.start, tr.ended), tr.hung ? "timed_out" : "failed"});
  return out;
}

Lease::Mark AppDispatcher::to_tunnel(int slot, uint64_t generation, Lease::Mark mark,
                                     std::chrono::steady_clock::time_point granted) {
  std::vector<std::pair<std::shared_ptr<Waiter>, Lease>> grants;
  Lease::Mark next = mark == Lease::Mark::Reserved ? Lease::Mark::Moved : Lease::Mark::Held;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto now = std::chrono::steady_clock::now();
    ++totals_.tunnels;
    for (size_t i = 0; i < slots_.size(); ++i) {
      SlotState& s = slots_[i];
      if (s.slot != slot || s.generation != generation) continue;
      ++s.tunnels;
      if (next == Lease::Mark::Moved) {
        // The request is done as far as concurrency goes: counted now (its busy time ends
        // here), and its slot is free for the queue.
        if (s.tunnel_reserved > 0) --s.tunnel_reserved;
        drop_in_flight_locked(i);
        if (in_flight_ > 0) --in_flight_;
        ++totals_.requests;
        if (granted != std::chrono::steady_clock::time_point{} && now > granted) totals_.busy += now - granted;
      }
      break;
    }
    if (next == Lease::Mark::Moved) grant_queued_locked(now, grants);
  }
  for (auto& [w, l] : grants) w->grant(std::move(l));
  flush_events();
  return next;
}

void AppDispatcher::release(int slot, uint64_t generation, uint64_t ticket, ReleaseKind kind,
                            std::chrono::steady_clock::time_point granted, Lease::Mark mark) {
  std::vector<std::pair<std::shared_ptr<Waiter>, Lease>> grants;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto now = std::chrono::steady_clock::now();
    const bool moved = mark == Lease::Mark::Moved;  // in_flight and the request were settled by to_tunnel
    if (!moved && in_flight_ > 0) --in_flight_;
    // A failed connect never reached the worker: it is retried, and counted once, elsewhere.
    if (kind != ReleaseKind::FailedConnect && !moved) {
      ++totals_.requests;
      if (granted != std::chrono::steady_clock::time_point{} && now > granted) totals_.busy += now - granted;
    }
    if (ticket != 0) {
      const uint32_t i = static_cast<uint32_t>(ticket);
      if (i < active_.size() && active_[i].in_use && active_[i].serial == static_cast<uint32_t>(ticket >> 32)) {
        if (kind == ReleaseKind::Lost || kind == ReleaseKind::Hung) {
          Tracked tr = active_[i];  // a copy: the slab entry keeps its strings for reuse
          tr.ended = now;
          tr.hung = kind == ReleaseKind::Hung;
          tr.keep_until = now + (tr.hung ? settings_.hung_retention : settings_.lost_retention);
          while (!lost_.empty() && (lost_.size() >= kMaxLost || lost_.front().keep_until <= now)) lost_.pop_front();
          lost_.push_back(std::move(tr));
        }
        active_[i].in_use = false;
        free_.push_back(i);
      }
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      SlotState& s = slots_[i];
      if (s.slot != slot || s.generation != generation) continue;
      if (!moved) drop_in_flight_locked(i);
      if (mark == Lease::Mark::Reserved && s.tunnel_reserved > 0) --s.tunnel_reserved;
      if ((mark == Lease::Mark::Held || moved) && s.tunnels > 0) --s.tunnels;
      if (kind == ReleaseKind::FailedConnect) {
        // The supervisor checks the worker's socket itself (a closed or removed socket gets
        // the worker replaced); told at most once per down period.
        if (s.down_until <= now)
          events_.push_back(control::SlotEvent{settings_.app, s.slot, s.generation, control::SlotEvent::Kind::Refused, s.requests});
        s.down_until = now + settings_.connect_down_time;
      }
      if (kind == ReleaseKind::Hung) {
        if (live(s)) --accepting_live_;
        s.hung = true;
      }
      if (s.removed && s.in_flight == 0 && s.tunnels == 0 && s.tunnel_reserved == 0) erase_slot_locked(i);
      break;
    }
    grant_queued_locked(now, grants);
    // After the queue had its turn: a draining worker may have taken a queued request.
    note_idle_all_locked();
  }
  // Outside the lock: grant() posts to the waiter's loop, and a dropped Lease re-enters release().
  for (auto& [w, l] : grants) w->grant(std::move(l));
  flush_events();
}

void AppDispatcher::update_slots(const std::vector<control::SlotInfo>& infos) {
  std::vector<std::pair<std::shared_ptr<Waiter>, Lease>> grants;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& s : slots_) s.removed = true;
    // Kept as the slots are listed: note_idle_locked below sees the pool as listed so far.
    accepting_live_ = 0;
    for (auto& info : infos) {
      if (info.app != settings_.app) continue;
      auto it = std::find_if(slots_.begin(), slots_.end(), [&](const SlotState& s) {
        return s.slot == info.slot && s.generation == info.generation;
      });
      if (it != slots_.end()) {
        const bool was_live = live(*it);
        it->removed = false;
        it->accepting = info.accepting;
        if (live(*it) && !was_live) ++accepting_live_;
        if (!live(*it) && was_live) --accepting_live_;
        if (info.accepting) it->drained_reported = false;
        if (it->max_requests != info.max_requests) it->max_reported = false;
        it->max_requests = info.max_requests;
        it->concurrency = std::max(1, info.concurrency);
        note_idle_locked(*it);
        if (it->path != info.path) {
          it->path = info.path;
          paths_[static_cast<size_t>(it - slots_.begin())] = std::make_shared<const std::string>(info.path);
        }
        continue;
      }
      SlotState s;
      s.slot = info.slot;
      s.generation = info.generation;
      s.path = info.path;
      s.concurrency = std::max(1, info.concurrency);
      s.accepting = info.accepting;
      s.max_requests = info.max_requests;
      note_idle_locked(s);
      slots_.push_back(s);
      if (live(s)) ++accepting_live_;
      paths_.push_back(std::make_shared<const std::string>(info.path));
      max_seen_.push_back(0);
    }
    // Drop removed slots with nothing in flight now; the others go when their last lease returns.
    for (size_t i = slots_.size(); i-- > 0;) {
      const SlotState& s = slots_[i];
      if (s.removed && s.in_flight == 0 && s.tunnels == 0 && s.tunnel_reserved == 0) erase_slot_locked(i);
    }
    recount_locked();
    // Keep a stable order so the round-robin cursor means something.
    // (Insertion order is by arrival; the pool message lists slots in order.)
    grant_queued_locked(std::chrono::steady_clock::now(), grants);
  }
  for (auto& [w, l] : grants) w->grant(std::move(l));
  flush_events();
}

std::vector<SlotState> AppDispatcher::slots() const {
  std::lock_guard<std::mutex> g(mu_);
  return slots_;
}

size_t AppDispatcher::queued() const {
  std::lock_guard<std::mutex> g(mu_);
  return queue_.size();
}

uint64_t AppDispatcher::tunnels_open() const {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t n = 0;
  for (const auto& s : slots_) n += static_cast<uint64_t>(s.tunnels);
  return n;
}

AppDispatcher::Totals AppDispatcher::totals() const {
  std::lock_guard<std::mutex> g(mu_);
  return totals_;
}

AppDispatcher::TunnelByteTotals AppDispatcher::tunnel_bytes_total() const {
  TunnelByteTotals t;
  for (size_t th = 0; th < tunnel_bytes_.size(); ++th) {
    t.up += tunnel_bytes_.at(th).up.get();
    t.down += tunnel_bytes_.at(th).down.get();
  }
  return t;
}

uint64_t AppDispatcher::max_in_flight_seen(int slot) const {
  std::lock_guard<std::mutex> g(mu_);
  uint64_t m = 0;
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].slot == slot) m = std::max(m, max_seen_[i]);
  return m;
}

}  // namespace corral::proxy
