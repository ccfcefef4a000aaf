#pragma once
// RAII over libevent: the only file in corral that includes libevent headers.
//
// A Loop is one event_base. FdWatch, Timer and SignalWatch register callbacks on it and
// unregister on destruction. Everything here is loop-affine (call it from the thread that
// runs the loop) except Loop::post() and Loop::break_loop(), which are thread-safe.
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

struct event_base;
struct event;

namespace corral::ev {

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  /// Runs until break_loop() or until nothing is registered. Returns false on a libevent error.
  bool run();
  /// Makes run() return after the current callbacks. Thread-safe.
  void break_loop();
  /// Queues fn to run on the loop's thread. Thread-safe; fn runs even if posted from the loop.
  void post(std::function<void()> fn);
  /// True when called from the thread currently inside run() (or when not running at all).
  bool is_current() const;
  /// Monotonic time, read at most once per callback: inside one callback (an FdWatch, Timer
  /// or posted function of this loop) every call returns the same value; outside callbacks
  /// it reads the clock. Loop thread only.
  std::chrono::steady_clock::time_point now() const;

  /// Marks a callback of this loop (the cached time of now() is renewed). Used by the
  /// FdWatch / Timer trampolines; the guard outlives a callback that destroys its watch.
  class CallbackScope {
   public:
    explicit CallbackScope(Loop& l) : loop_(l) {
      ++loop_.callback_depth_;
      loop_.now_stale_ = true;
    }
    ~CallbackScope() { --loop_.callback_depth_; }
    CallbackScope(const CallbackScope&) = delete;
    CallbackScope& operator=(const CallbackScope&) = delete;

   private:
    Loop& loop_;
  };

  event_base* base() const { return base_; }

 private:
  static void on_wakeup(int fd, short what, void* arg);
  void drain_posted();

  event_base* base_ = nullptr;
  event* wakeup_ev_ = nullptr;
  int wake_fd_ = -1;  // eventfd
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  std::atomic<pthread_t> running_thread_{};
  std::atomic<bool> running_{false};
  int callback_depth_ = 0;
  mutable bool now_stale_ = true;
  mutable std::chrono::steady_clock::time_point now_{};
};

/// Watches one fd for readability and/or writability. Persistent until disabled.
class FdWatch {
 public:
  using Callback = std::function<void(bool readable, bool writable)>;
  FdWatch(Loop& loop, int fd, Callback cb);
  ~FdWatch();
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  /// Sets interest; (false, false) disables. Cheap when unchanged. A change of interest
  /// drops the inactivity timeout.
  void set(bool want_read, bool want_write);
  /// Inactivity timeout while the watch is enabled: when nothing happens on the fd for d,
  /// the callback gets (false, false). Re-armed after each event until clear_timeout().
  /// Neither call makes a system call (the fd's registration is unchanged).
  void set_timeout(std::chrono::milliseconds d);
  void clear_timeout();
  bool wants_read() const { return want_read_; }
  bool wants_write() const { return want_write_; }
  int fd() const { return fd_; }

 private:
  static void on_event(int fd, short what, void* arg);
  Loop& loop_;
  int fd_;
  Callback cb_;
  event* ev_ = nullptr;
  bool want_read_ = false, want_write_ = false, added_ = false;
};

/// A one-shot (re-armable) timer. Its libevent event is allocated on the first arm(), so a
/// timer that never runs costs no allocation.
class Timer {
 public:
  Timer(Loop& loop, std::function<void()> cb);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// (Re)arms to fire once after d.
  void arm(std::chrono::milliseconds d);
  void cancel();
  /// Cancels and frees the libevent event (a later arm() allocates it again): for a timer
  /// that served its purpose in an object that lives on (a connection past its handshake).
  void release();
  bool armed() const;

 private:
  static void on_event(int fd, short what, void* arg);
  Loop& loop_;
  std::function<void()> cb_;
  event* ev_ = nullptr;
};

/// Delivers a Unix signal as a loop callback (libevent's self-pipe). Persistent.
class SignalWatch {
 public:
  SignalWatch(Loop& loop, int signo, std::function<void()> cb);
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

 private:
  static void on_event(int fd, short what, void* arg);
  std::function<void()> cb_;
  event* ev_ = nullptr;
};

}  // namespace corral::ev
