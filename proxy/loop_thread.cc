#include "proxy/loop_thread.h"

#include "common/base/log.h"

namespace corral::proxy {

LoopThread::LoopThread(int index, LoopShared& shared)
    : index_(index), shared_(shared), pool_(loop_), access_log_(shared.access_log) {}

LoopThread::~LoopThread() {
  stop();
  // Sessions reference the pool and the loop: destroy them first.
  listeners_.clear();
  sessions_.clear();
  graveyard_.clear();
}

void LoopThread::start() {
  thread_ = std::thread([this] {
    // The loop's own wake-up event is persistent, so run() returns only after break_loop().
    while (!stop_.load()) {
      if (!loop_.run()) {
        CORRAL_LOG(Error, "loop") << "event loop " << index_ << " failed";
        break;
      }
    }
  });
}

void LoopThread::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  loop_.break_loop();
  thread_.join();
}

void LoopThread::set_runtime(std::shared_ptr<const Runtime> rt) {
  loop_.post([this, rt = std::move(rt)] { runtime_ = rt; });
}

void LoopThread::set_access_log(std::shared_ptr<AccessLog> log) {
  loop_.post([this, log = std::move(log)] { access_log_ = log; });
}

void LoopThread::set_listeners(std::shared_ptr<const ListenerSet> ls) {
  loop_.post([this, ls = std::move(ls)] {
    listeners_.clear();  // unwatch before the old set may close its fds
    listener_set_ = ls;
    if (draining_ || !ls) return;
    for (const auto& fd : ls->fds)
      listeners_.push_back(std::make_unique<Listener>(loop_, fd.get(), [this](UniqueFd c, std::string ip) {
        adopt(std::move(c), std::move(ip));
      }));
  });
}

void LoopThread::retain_upstreams(std::shared_ptr<const std::vector<std::pair<std::string, uint64_t>>> live) {
  loop_.post([this, live = std::move(live)] { pool_.retain(*live); });
}

void LoopThread::begin_drain() {
  loop_.post([this] {
    draining_ = true;
    listeners_.clear();
    listener_set_.reset();
    std::vector<Http1Session*> all;
    all.reserve(sessions_.size());
    for (auto& [p, s] : sessions_) all.push_back(p);
    for (auto* s : all) s->drain();
    check_drained();
  });
}

void LoopThread::adopt(UniqueFd fd, std::string client_ip) {
  if (!runtime_ || draining_) return;  // no config yet: the socket closes
  auto s = std::make_unique<Http1Session>(*this, std::move(fd), std::move(client_ip));
  Http1Session* raw = s.get();
  sessions_.emplace(raw, std::move(s));
  raw->start();
}

void LoopThread::session_closed(Http1Session* s) {
  auto it = sessions_.find(s);
  if (it == sessions_.end()) return;
  bool first = graveyard_.empty();
  graveyard_.push_back(std::move(it->second));
  sessions_.erase(it);
  // Destroyed after the current callback chain unwinds (it may be running inside s).
  if (first) loop_.post([this] { reap(); });
}

void LoopThread::reap() {
  graveyard_.clear();
  check_drained();
}

void LoopThread::check_drained() {
  if (draining_ && sessions_.empty() && !drained_reported_) {
    drained_reported_ = true;
    if (shared_.on_drained) shared_.on_drained(index_);
  }
}

void LoopThread::log_access(const AccessRecord& r) {
  if (!access_log_ || !access_log_->enabled()) return;
  log_line_.clear();
  access_log_->format(r, log_line_);
  access_log_->write(log_line_);
}

void LoopThread::report_hung(const std::string& app, int slot, uint64_t generation, std::string_view request_id) {
  if (shared_.on_hung) shared_.on_hung(app, slot, generation, std::string(request_id));
}

}  // namespace corral::proxy
