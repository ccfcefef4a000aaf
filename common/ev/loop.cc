#include "common/ev/loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>

#include "common/base/log.h"

namespace corral::ev {
namespace {
void init_threads_once() {
  static bool done = [] {
    evthread_use_pthreads();
    return true;
  }();
  (void)done;
}
timeval to_tv(std::chrono::milliseconds d) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}
}  // namespace

Loop::Loop() {
  init_threads_once();
  event_config* cfg = event_config_new();
  // We never share a base between threads except through post(), which has its own lock.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  CORRAL_CHECK(base_ != nullptr, "event_base_new failed");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CORRAL_CHECK(wake_fd_ >= 0, "eventfd failed");
  wakeup_ev_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, &Loop::on_wakeup, this);
  event_add(wakeup_ev_, nullptr);
}

Loop::~Loop() {
  // Functions posted but never run may own objects with events on this base (a connection
  // whose destruction was deferred): they go while the base is still there.
  {
    std::vector<std::function<void()>> left;
    {
      std::lock_guard<std::mutex> g(mu_);
      left.swap(posted_);
    }
  }
  event_free(wakeup_ev_);
  ::close(wake_fd_);
  event_base_free(base_);
}

bool Loop::run() {
  running_thread_.store(pthread_self());
  running_.store(true);
  int rc = event_base_dispatch(base_);
  running_.store(false);
  return rc >= 0;
}

void Loop::break_loop() {
  // event_base_loopbreak is not safe across threads on a NOLOCK base; go through post().
  post([this] { event_base_loopbreak(base_); });
}

void Loop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t w = ::write(wake_fd_, &one, sizeof one);
  (void)w;  // EAGAIN means the counter is already non-zero: a wakeup is pending anyway
}

bool Loop::is_current() const {
  return !running_.load() || pthread_equal(running_thread_.load(), pthread_self());
}

std::chrono::steady_clock::time_point Loop::now() const {
  if (callback_depth_ == 0) return std::chrono::steady_clock::now();
  if (now_stale_) {
    now_ = std::chrono::steady_clock::now();
    now_stale_ = false;
  }
  return now_;
}

void Loop::on_wakeup(int fd, short, void* arg) {
  uint64_t v;
  while (::read(fd, &v, sizeof v) > 0) {
  }
  auto* self = static_cast<Loop*>(arg);
  CallbackScope scope(*self);
  self->drain_posted();
}

void Loop::drain_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> g(mu_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

FdWatch::FdWatch(Loop& loop, int fd, Callback cb) : loop_(loop), fd_(fd), cb_(std::move(cb)) {}

FdWatch::~FdWatch() {
  if (ev_) event_free(ev_);
}

void FdWatch::set(bool want_read, bool want_write) {
  if (want_read == want_read_ && want_write == want_write_ && (added_ || (!want_read && !want_write)))
    return;
  want_read_ = want_read;
  want_write_ = want_write;
  if (ev_) {
    event_del(ev_);
    added_ = false;
  }
  if (!want_read && !want_write) return;
  short what = EV_PERSIST | (want_read ? EV_READ : 0) | (want_write ? EV_WRITE : 0);
  if (!ev_) {
    ev_ = event_new(loop_.base(), fd_, what, &FdWatch::on_event, this);
  } else {
    event_assign(ev_, loop_.base(), fd_, what, &FdWatch::on_event, this);
  }
  event_add(ev_, nullptr);
  added_ = true;
}

void FdWatch::set_timeout(std::chrono::milliseconds d) {
  if (!added_) return;
  // Re-adding a pending event only (re)schedules its timeout: no epoll_ctl.
  timeval tv = to_tv(d);
  event_add(ev_, &tv);
}

void FdWatch::clear_timeout() {
  if (added_) event_remove_timer(ev_);
}

void FdWatch::on_event(int, short what, void* arg) {
  auto* self = static_cast<FdWatch*>(arg);
  Loop::CallbackScope scope(self->loop_);
  // Copy nothing: the callback may destroy *self; it must not touch self afterwards.
  self->cb_((what & EV_READ) != 0, (what & EV_WRITE) != 0);
}

Timer::Timer(Loop& loop, std::function<void()> cb) : loop_(loop), cb_(std::move(cb)) {}

Timer::~Timer() {
  if (ev_) event_free(ev_);
}

void Timer::arm(std::chrono::milliseconds d) {
  if (!ev_) ev_ = event_new(loop_.base(), -1, 0, &Timer::on_event, this);
  timeval tv = to_tv(d);
  event_add(ev_, &tv);
}

void Timer::cancel() {
  if (ev_) event_del(ev_);
}

void Timer::release() {
  if (!ev_) return;
  event_free(ev_);  // event_free deletes a pending event first
  ev_ = nullptr;
}

bool Timer::armed() const { return ev_ && event_pending(ev_, EV_TIMEOUT, nullptr) != 0; }

void Timer::on_event(int, short, void* arg) {
  auto* self = static_cast<Timer*>(arg);
  Loop::CallbackScope scope(self->loop_);
  self->cb_();
}

SignalWatch::SignalWatch(Loop& loop, int signo, std::function<void()> cb) : cb_(std::move(cb)) {
  ev_ = evsignal_new(loop.base(), signo, &SignalWatch::on_event, this);
  event_add(ev_, nullptr);
}

SignalWatch::~SignalWatch() { event_free(ev_); }

void SignalWatch::on_event(int, short, void* arg) { static_cast<SignalWatch*>(arg)->cb_(); }

}  // namespace corral::ev
