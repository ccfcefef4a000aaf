#include "proxy/upstream/pool.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace corral::proxy {

UpstreamConn::UpstreamConn(ev::Loop& loop, UniqueFd fd, std::string_view path, uint64_t generation)
    : fd_(std::move(fd)),
      path_(path),
      generation_(generation),
      watch_(loop, fd_.get(), [this](bool r, bool w) { on_io(r, w); }) {}

void UpstreamConn::on_io(bool r, bool w) {
  if (handler_) {
    handler_->on_upstream_io(r, w);
    return;
  }
  // Idle in the pool: the worker closed it (or sent bytes nobody asked for). Either way it
  // can no longer carry a request.
  if (idle_in_) idle_in_->close_idle(this);
}

UpstreamPool::~UpstreamPool() = default;

UpstreamPool::Bucket* UpstreamPool::find(std::string_view path, uint64_t generation) {
  for (auto& b : buckets_)
    if (b.generation == generation && b.path == path) return &b;
  return nullptr;
}

std::unique_ptr<UpstreamConn> UpstreamPool::take(std::string_view path, uint64_t generation) {
  Bucket* b = find(path, generation);
  if (!b || b->idle.empty()) return nullptr;
  // LIFO: the most recently used connection is the least likely to have been closed.
  std::unique_ptr<UpstreamConn> c = std::move(b->idle.back());
  b->idle.pop_back();
  c->idle_in_ = nullptr;
  // Read interest stays on: the new owner wants it anyway, and each epoll_ctl is a syscall.
  return c;
}

std::unique_ptr<UpstreamConn> UpstreamPool::connect(std::string_view path, uint64_t generation, int* err) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    *err = ENAMETOOLONG;
    return nullptr;
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    *err = errno;
    return nullptr;
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    // Unix stream sockets never return EINPROGRESS; EAGAIN means the listen backlog is full.
    *err = errno;
    return nullptr;
  }
  *err = 0;
  return std::make_unique<UpstreamConn>(loop_, std::move(fd), path, generation);
}

void UpstreamPool::put(std::unique_ptr<UpstreamConn> c) {
  c->set_handler(nullptr);
  c->set_reused();
  Bucket* b = find(c->path(), c->generation());
  if (!b) {
    buckets_.push_back(Bucket{std::string(c->path()), c->generation(), {}});
    b = &buckets_.back();
  }
  if (b->idle.size() >= max_idle_) return;  // closes c
  c->idle_in_ = this;
  c->want(true, false);
  b->idle.push_back(std::move(c));
}

void UpstreamPool::close_idle(UpstreamConn* c) {
  Bucket* b = find(c->path(), c->generation());
  if (!b) return;
  for (size_t i = 0; i < b->idle.size(); ++i) {
    if (b->idle[i].get() != c) continue;
    // Deferred: we are inside c's own FdWatch callback, which must not be freed under it.
    std::shared_ptr<UpstreamConn> doomed(b->idle[i].release());
    doomed->want(false, false);
    b->idle[i] = std::move(b->idle.back());
    b->idle.pop_back();
    loop_.post([doomed] {});
    return;
  }
}

void UpstreamPool::retain(const std::vector<std::pair<std::string, uint64_t>>& live) {
  for (size_t i = 0; i < buckets_.size();) {
    bool keep = false;
    for (const auto& [p, g] : live)
      if (p == buckets_[i].path && g == buckets_[i].generation) keep = true;
    if (keep) {
      ++i;
    } else {
      buckets_[i] = std::move(buckets_.back());
      buckets_.pop_back();
    }
  }
}

char* UpstreamPool::borrow_scratch() {
  if (scratch_busy_) return nullptr;
  if (!scratch_) scratch_.reset(new char[kScratchSize]);
  scratch_busy_ = true;
  return scratch_.get();
}

size_t UpstreamPool::idle_count() const {
  size_t n = 0;
  for (const auto& b : buckets_) n += b.idle.size();
  return n;
}

SharedIdleConns& SharedIdleConns::instance() {
  static SharedIdleConns s;
  return s;
}

UniqueFd SharedIdleConns::take(std::string_view path, uint64_t generation) {
  std::lock_guard<std::mutex> g(mu_);
  for (size_t i = 0; i < idle_.size();) {
    if (idle_[i].path != path) {
      ++i;
      continue;
    }
    bool same = idle_[i].generation == generation;
    UniqueFd fd = std::move(idle_[i].fd);
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
    if (same) return fd;
    // Else a replaced generation of this slot (its process is gone or going): fd closes here.
  }
  return {};
}

size_t SharedIdleConns::size() const {
  std::lock_guard<std::mutex> g(mu_);
  return idle_.size();
}

bool SharedIdleConns::accepting_locked(std::string_view path, uint64_t generation) const {
  if (!pool_known_) return true;
  for (const auto& [p, g] : accepting_)
    if (g == generation && p == path) return true;
  return false;
}

void SharedIdleConns::put(std::string_view path, uint64_t generation, UniqueFd fd) {
  std::lock_guard<std::mutex> g(mu_);
  // A request that was in flight when its worker began to drain: the worker will not be
  // asked again, and is waiting for this connection to close before it exits.
  if (!accepting_locked(path, generation)) return;  // fd closes
  if (idle_.size() >= kMaxIdle) idle_.erase(idle_.begin());  // oldest first
  idle_.push_back({std::string(path), generation, std::move(fd)});
}

void SharedIdleConns::retain(const std::vector<std::pair<std::string, uint64_t>>& accepting) {
  std::lock_guard<std::mutex> g(mu_);
  pool_known_ = true;
  accepting_ = accepting;
  std::erase_if(idle_, [&](const Entry& e) { return !accepting_locked(e.path, e.generation); });
}

}  // namespace corral::proxy
