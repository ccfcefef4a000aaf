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
#include <string_view>
#include <vector>

#include "common/control/messages.h"
#include "proxy/metrics/metrics.h"

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
  /// Requests still out on earlier processes of this slot's socket (removed slots with the
  /// same path: the worker was restarted in its slot): the new process serves them. Kept for
  /// slots in the pool; 0 on removed ones.
  int carried = 0;
  /// Open tunnels (WebSocket/Upgrade) on this worker: those that moved out of in_flight
  /// (max_tunnels set) and those that keep their request slot (max_tunnels = 0).
  int tunnels = 0;
  /// Upgrade requests sent to this worker under max_tunnels, not switched yet: they hold a
  /// tunnel place too, so that max_tunnels is never passed when they all switch.
  int tunnel_reserved = 0;
  uint64_t requests = 0;
  uint64_t max_requests = 0;     ///< report a MaxRequests event at this count; 0 = never
  bool max_reported = false;
  bool drained_reported = false;  ///< a Drained event went out since it stopped accepting
  std::chrono::steady_clock::time_point down_until{};  ///< after a connect failure
};

/// What a lease is serving, for the death record of a worker that dies under it.
struct RequestInfo {
  std::string id;
  std::string trace_id;  ///< W3C trace-id; empty when unknown
  std::string method;
  std::string path;  ///< request target, cut at kMaxPath bytes
  std::chrono::steady_clock::time_point start{};
  static constexpr size_t kMaxPath = 256;
};

/// The request a lease serves, as Lease::describe() takes it (copied; the path is cut at
/// RequestInfo::kMaxPath).
struct RequestRef {
  std::string_view id;
  std::string_view method;
  std::string_view path;
  std::chrono::steady_clock::time_point start{};
  std::string_view trace_id = {};
};

/// A request a slot was serving (or lost) as reported to the supervisor.
struct SlotRequest {
  RequestInfo info;
  std::chrono::milliseconds elapsed{0};  ///< start → now (in flight) or → when it failed
  /// "in_flight"; "failed" (the worker connection broke: EOF/reset); "timed_out" (504).
  std::string state;
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
  /// Records which request this lease serves (AppDispatcher::requests_of reports it).
  void describe(const RequestRef& r);
  /// The request finished (any outcome except "could not connect").
  void release();
  /// The worker connection broke mid-request (EOF, reset): like release(), and the request
  /// is kept for the slot's death record for a few seconds.
  void release_lost();
  /// Connecting to the slot failed: the request was never sent. Marks the slot down briefly.
  void release_failed_connect();
  /// The request passed the app's timeout on this slot: the worker is presumed hung and gets
  /// nothing new; the supervisor replaces it with a new generation.
  void release_hung();
  /// The worker switched protocols (101): the request became a tunnel. Under max_tunnels
  /// the request slot is freed now (queued requests may take it) and the lease holds the
  /// worker's tunnel place until released; otherwise it keeps holding the request slot.
  /// Released like any lease when the tunnel closes.
  void to_tunnel();

  /// How a lease counts against its worker (AppDispatcher bookkeeping).
  enum class Mark : uint8_t {
    Request,   ///< in_flight
    Reserved,  ///< in_flight + tunnel_reserved (an upgrade request under max_tunnels)
    Held,      ///< in_flight + tunnels (a tunnel that keeps its request slot)
    Moved,     ///< tunnels only (a tunnel under max_tunnels)
  };

 private:
  friend class AppDispatcher;
  // kind is an AppDispatcher::ReleaseKind (declared after this class).
  void release_as(int kind);
  std::shared_ptr<AppDispatcher> dispatcher_;
  int slot_ = -1;
  uint64_t generation_ = 0;
  std::shared_ptr<const std::string> path_;
  size_t index_ = 0;  // position in slots_ at grant time (hint only)
  uint64_t ticket_ = 0;  // describe()d request, 0 = none
  std::chrono::steady_clock::time_point granted_{};  // for AppDispatcher::Totals::busy
  Mark mark_ = Mark::Request;
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

  /// What the app's requests cost, cumulative since this dispatcher was created (the
  /// supervisor takes differences; `corralctl advise` turns them into a recommendation).
  /// Kept under the mutex the request path takes anyway: no extra lock, no atomics.
  struct Totals {
    uint64_t requests = 0;  ///< leases released after the request went to the worker (not connect failures)
    std::chrono::nanoseconds busy{0};   ///< sum of those leases' grant → release times
    std::chrono::nanoseconds queue{0};  ///< sum of queue waits, enqueue → grant or leaving the queue
    uint64_t queued = 0;          ///< requests that left the queue (granted, timed out or cancelled)
    uint64_t rejected = 0;        ///< QueueFull, NoWorkers and queue timeouts (cancel(w, true))
    uint64_t peak_in_flight = 0;  ///< the most leases out at once, all slots together
    uint64_t tunnels = 0;         ///< requests that became tunnels (101)
  };

  struct Settings {
    std::string app;
    uint32_t queue_size = 1024;
    std::chrono::milliseconds connect_down_time{1000};  ///< how long a slot that refused a connect is skipped
    std::chrono::milliseconds lost_retention{5000};     ///< how long a failed request is kept for requests_of
    std::chrono::milliseconds hung_retention{60000};    ///< same for timed-out ones (the kill may wait kill_timeout)
    size_t threads = 1;  ///< loop threads: one copy of the tunnel byte counters each
  };

  static std::shared_ptr<AppDispatcher> create(Settings s);

  /// Replaces the app's slot set (from a SetPool message). Slots not listed are marked
  /// removed and drain; new slots become available; waiters are granted if possible.
  void update_slots(const std::vector<control::SlotInfo>& slots);
  void update_settings(uint32_t queue_size);
  /// The app's max_tunnels (0 = tunnels keep their request slot). Applies to upgrade
  /// requests acquired from now on.
  void set_max_tunnels(uint32_t max_tunnels);
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
  /// upgrade: the request asks for a tunnel (WebSocket); under max_tunnels only a worker
  /// with a free request slot and a free tunnel place is picked (else it waits in the queue,
  /// which plain requests then pass).
  Outcome acquire(const std::shared_ptr<Waiter>& waiter, Lease& out, bool upgrade = false);
  /// Removes a queued waiter. Returns true when it was still queued (no grant will come).
  /// timed_out: it leaves because its queue_timeout passed (the client gets a 503), which
  /// Totals counts as a rejection.
  bool cancel(const Waiter* waiter, bool timed_out = false);

  /// The requests slot (generation) is serving now, then those that failed on it
  /// (release_lost, release_hung) within the retention time: what a death record names.
  std::vector<SlotRequest> requests_of(int slot, uint64_t generation) const;

  /// Introspection for status and tests.
  std::vector<SlotState> slots() const;
  size_t queued() const;
  /// Open tunnels, all workers together.
  uint64_t tunnels_open() const;
  uint64_t max_in_flight_seen(int slot) const;
  Totals totals() const;
  /// Loop thread `thread`'s copy of the app's tunnel byte counters: written by that thread
  /// only (no lock: see proxy/metrics), valid as long as the dispatcher.
  metrics::TunnelBytes& tunnel_bytes(size_t thread) noexcept { return tunnel_bytes_.at(thread); }
  /// The tunnel bytes of every thread together (any thread).
  struct TunnelByteTotals {
    uint64_t up = 0, down = 0;
  };
  TunnelByteTotals tunnel_bytes_total() const;

 private:
  friend class Lease;
  explicit AppDispatcher(Settings s);
  enum class ReleaseKind { Done, FailedConnect, Hung, Lost };
  void release(int slot, uint64_t generation, uint64_t ticket, ReleaseKind kind,
               std::chrono::steady_clock::time_point granted, Lease::Mark mark);
  /// Lease::to_tunnel. Returns the lease's new mark.
  Lease::Mark to_tunnel(int slot, uint64_t generation, Lease::Mark mark, std::chrono::steady_clock::time_point granted);
  uint64_t describe(int slot, uint64_t generation, const RequestRef& r);
  // Picks the least-loaded usable slot below concurrency; -1 when none. Mutex held.
  // tunnel: the slot must also have a free tunnel place (max_tunnels).
  int pick_locked(std::chrono::steady_clock::time_point now, bool tunnel = false);
  // The requests on the socket of slot i (in the pool): its own leases, and those still out
  // on an earlier process of the same socket (removed: the worker died and was restarted in
  // its slot), whose requests were resent to that socket or wait in its backlog, so the new
  // process serves them (SlotState::carried). Mutex held.
  int load_locked(size_t i) const;
  // One request less on slot i; when i was removed, one less carried by the slots in the
  // pool on its socket. Mutex held.
  void drop_in_flight_locked(size_t i);
  // Counts accepting_live_, draining_unreported_ and every slot's carried afresh. Mutex held.
  void recount_locked();
  // Takes new requests: accepting, in the pool, not hung.
  static bool live(const SlotState& s) { return s.accepting && !s.removed && !s.hung; }
  Lease make_lease_locked(int index, std::chrono::steady_clock::time_point now, bool tunnel = false);
  // Grants queued waiters in order while slots are free (an upgrade that finds no tunnel
  // place is passed over). Mutex held.
  void grant_queued_locked(std::chrono::steady_clock::time_point now,
                           std::vector<std::pair<std::shared_ptr<Waiter>, Lease>>& grants);
  // Drops removed slots with nothing on them any more. Mutex held.
  void erase_slot_locked(size_t i);
  // True when no slot accepts new requests (the app was removed by a reload, or every
  // worker is being replaced at once): then the draining workers serve the requests routed
  // to the app before the switch, queued or arriving, instead of leaving them to wait for
  // queue_timeout and a 503. Mutex held.
  bool draining_serve_locked() const;
  // Queues a Drained event when s is idle, not accepting and has no queued request to
  // serve. Mutex held.
  void note_idle_locked(SlotState& s);
  // note_idle_locked on every slot, when one may be due. Mutex held.
  void note_idle_all_locked();
  // Hands the queued events to the observer. Mutex NOT held.
  void flush_events();

  mutable std::mutex mu_;
  Settings settings_;
  std::vector<SlotState> slots_;
  std::vector<std::shared_ptr<const std::string>> paths_;
  std::vector<uint64_t> max_seen_;
  struct Queued {
    std::shared_ptr<Waiter> waiter;
    std::chrono::steady_clock::time_point since;
    bool tunnel = false;  // an upgrade under max_tunnels
  };
  std::deque<Queued> queue_;
  size_t queued_tunnels_ = 0;  // entries of queue_ with tunnel set
  uint32_t max_tunnels_ = 0;
  Totals totals_;
  metrics::PerThread<metrics::TunnelBytes> tunnel_bytes_;  // not under mu_: per-thread counters
  uint64_t in_flight_ = 0;  // leases out, all slots
  // Maintained so that a request costs O(1) per slot under the mutex, whatever state the
  // slots are in (no slot scan per slot):
  size_t accepting_live_ = 0;       // slots that are live()
  size_t draining_unreported_ = 0;  // slots not accepting, in the pool, with no Drained event out
  size_t rr_ = 0;  // round-robin start for ties, so idle slots share the load
  bool failing_ = false;
  Observer observer_;
  std::vector<control::SlotEvent> events_;  // produced under the mutex, delivered after it
  struct Tracked {
    int slot = 0;
    uint64_t generation = 0;
    RequestInfo info;
    std::chrono::steady_clock::time_point ended{};  // lost_ only
    std::chrono::steady_clock::time_point keep_until{};
    bool hung = false;
    bool in_use = false;  // active_ only
    uint32_t serial = 0;  // active_ only: bumped per use, the high half of the ticket
  };
  // The described requests in flight: a slab whose entries (and their strings' capacity)
  // are reused, so describing a request allocates nothing once warm. A ticket is
  // serial << 32 | index.
  std::vector<Tracked> active_;
  std::vector<uint32_t> free_;  // unused indices of active_
  std::deque<Tracked> lost_;    // newest last, at most kMaxLost
  static constexpr size_t kMaxLost = 64;
};

}  // namespace corral::proxy
