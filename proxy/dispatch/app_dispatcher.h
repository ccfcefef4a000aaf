#pragma once
// AppDispatcher: the one fenced shared object of the proxy. One per app, shared by every
// loop thread. It knows each worker slot's concurrency and requests in flight, hands out
// leases to the least-loaded slot below its concurrency, and keeps a bounded FIFO of
// waiters when every slot is busy. A worker never gets more than `concurrency` leases.
//
// Thread-safe: every public method takes the internal mutex. Callbacks (Waiter::grant) are
// invoked with the mutex released.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/control/messages.h"

namespace corral::proxy {

/// One worker slot as the dispatcher sees it.
struct SlotState {
  int slot = 0;
  uint64_t generation = 0;
  std::string path;
  int concurrency = 1;
  bool accepting = true;
  bool removed = false;  ///< no longer in the pool: drains, never chosen
  bool hung = false;     ///< a request timed out on it: never chosen again (its replacement is a new generation)
  int in_flight = 0;
  uint64_t requests = 0;
  uint64_t max_requests = 0;     ///< report a MaxRequests event at this count; 0 = never
  bool max_reported = false;
  bool drained_reported = false;  ///< a Drained event went out since it stopped accepting
  std::chrono::steady_clock::time_point down_until{};  ///< after a connect failure
};

/// The right to send one request to one slot. Release it exactly once (release() or
/// release_failed_connect()); a Lease destroyed without release releases itself.
class AppDispatcher;
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& o) noexcept;
  Lease& operator=(Lease&& o) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  explicit operator bool() const { return dispatcher_ != nullptr; }
  int slot() const { return slot_; }
  uint64_t generation() const { return generation_; }
  const std::string& path() const { return *path_; }
  /// The request finished (any outcome except "could not connect").
  void release();
  /// Connecting to the slot failed: the request was never sent. Marks the slot down briefly.
  void release_failed_connect();
  /// The request passed the app's timeout on this slot: the worker is presumed hung and gets
  /// nothing new; the supervisor replaces it with a new generation.
  void release_hung();

 private:
  friend class AppDispatcher;
  std::shared_ptr<AppDispatcher> dispatcher_;
  int slot_ = -1;
  uint64_t generation_ = 0;
  std::shared_ptr<const std::string> path_;
  size_t index_ = 0;  // position in slots_ at grant time (hint only)
};

/// A request waiting for a lease. grant() runs on the thread that released a slot; the
/// implementation must hand the lease to its own loop (ev::Loop::post) and cope with having
/// been cancelled meanwhile (then simply let the Lease go, which releases it).
class Waiter {
 public:
  virtual ~Waiter() = default;
  virtual void grant(Lease lease) = 0;
};

class AppDispatcher : public std::enable_shared_from_this<AppDispatcher> {
 public:
  enum class Outcome { Granted, Queued, QueueFull, NoWorkers };

  struct Settings {
    std::string app;
    uint32_t queue_size = 1024;
    std::chrono::milliseconds connect_down_time{1000};  ///< how long a slot that refused a connect is skipped
  };

  static std::shared_ptr<AppDispatcher> create(Settings s);

  /// Replaces the app's slot set (from a SetPool message). Slots not listed are marked
  /// removed and drain; new slots become available; waiters are granted if possible.
  void update_slots(const std::vector<control::SlotInfo>& slots);
  void update_settings(uint32_t queue_size);
  /// Receives slot events (control::SlotEvent: Drained, MaxRequests) for the supervisor.
  /// Called with the mutex released, on whichever thread caused the event.
  using Observer = std::function<void(control::SlotEvent)>;
  void set_observer(Observer o);
  /// failing: the app's workers keep failing to start. While no slot is usable, acquire()
  /// then answers NoWorkers at once instead of queueing.
  void set_failing(bool failing);

  /// Tries to get a lease now. Granted → `out` holds it. Otherwise, when there is room,
  /// `waiter` is queued (Queued) and will get grant() later unless cancel()ed first.
  /// QueueFull: every slot busy and the queue at queue_size. NoWorkers: no usable slot at all
  /// (still queued when there is room, since a slot may come back: then Queued is returned).
  Outcome acquire(const std::shared_ptr<Waiter>& waiter, Lease& out);
  /// Removes a queued waiter. Returns true when it was still queued (no grant will come).
  bool cancel(const Waiter* waiter);

  /// Introspection for status and tests.
  std::vector<SlotState> slots() const;
  size_t queued() const;
  uint64_t max_in_flight_seen(int slot) const;

 private:
  friend class Lease;
  explicit AppDispatcher(Settings s);
  enum class ReleaseKind { Done, FailedConnect, Hung };
  void release(int slot, uint64_t generation, ReleaseKind kind);
  // Picks the least-loaded usable slot below concurrency; -1 when none. Mutex held.
  int pick_locked(std::chrono::steady_clock::time_point now);
  Lease make_lease_locked(int index);
  // Queues a Drained event when s is idle and not accepting. Mutex held.
  void note_idle_locked(SlotState& s);
  // Hands the queued events to the observer. Mutex NOT held.
  void flush_events();

  mutable std::mutex mu_;
  Settings settings_;
  std::vector<SlotState> slots_;
  std::vector<std::shared_ptr<const std::string>> paths_;
  std::vector<uint64_t> max_seen_;
  std::deque<std::shared_ptr<Waiter>> queue_;
  size_t rr_ = 0;  // round-robin start for ties, so idle slots share the load
  bool failing_ = false;
  Observer observer_;
  std::vector<control::SlotEvent> events_;  // produced under the mutex, delivered after it
};

}  // namespace corral::proxy
