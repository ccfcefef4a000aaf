#include "proxy/connection_limiter.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace corral::proxy {

ClientKey client_key(const sockaddr_storage& peer) {
  ClientKey k;
  const uint8_t* v4 = nullptr;
  if (peer.ss_family == AF_INET) {
    v4 = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(peer).sin_addr);
  } else if (peer.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(peer).sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      v4 = &a6.s6_addr[12];
    } else {
      k.family = AF_INET6;
      for (int i = 0; i < 8; ++i) k.hi = (k.hi << 8) | a6.s6_addr[i];
      return k;
    }
  }
  if (v4) {
    k.family = AF_INET;
    k.hi = (uint64_t{v4[0]} << 24) | (uint64_t{v4[1]} << 16) | (uint64_t{v4[2]} << 8) | v4[3];
  }
  return k;
}

std::string client_key_text(const ClientKey& k) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (k.family == AF_INET) {
    in_addr a{};
    a.s_addr = htonl(static_cast<uint32_t>(k.hi));
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
  }
  if (k.family == AF_INET6) {
    in6_addr a{};
    for (int i = 0; i < 8; ++i) a.s6_addr[i] = static_cast<uint8_t>(k.hi >> (56 - 8 * i));
    inet_ntop(AF_INET6, &a, buf, sizeof buf);
    return std::string(buf) + "/64";
  }
  return "(not an IP client)";
}

ConnectionSlot& ConnectionSlot::operator=(ConnectionSlot&& o) noexcept {
  if (this != &o) {
    release();
    limiter_ = o.limiter_;
    key_ = o.key_;
    per_client_ = o.per_client_;
    o.limiter_ = nullptr;
  }
  return *this;
}

void ConnectionSlot::release() {
  if (!limiter_) return;
  ConnectionLimiter* l = limiter_;
  limiter_ = nullptr;
  l->release(key_, per_client_);
}

ConnectionLimiter::Verdict ConnectionLimiter::admit(const ClientKey& key, uint32_t max_total, uint32_t max_per_client,
                                                    ConnectionSlot& slot) {
  // The total first: one atomic add, undone when over the limit (a refused burst never
  // touches the per-client table).
  int64_t now = open_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (max_total && now > static_cast<int64_t>(max_total)) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::ListenerFull;
  }
  bool per_client = max_per_client && key.family != 0;
  if (per_client && !add_client(key, max_per_client)) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::ClientFull;
  }
  slot = ConnectionSlot(this, key, per_client);
  return Verdict::Admitted;
}

bool ConnectionLimiter::add_client(const ClientKey& key, uint32_t max_per_client) {
  Shard& s = shard_of(key);
  std::lock_guard<std::mutex> g(s.mu);
  uint32_t& n = s.counts[key];
  if (n >= max_per_client) return false;  // so n > 0: the entry stays, it counts open connections
  ++n;
  return true;
}

LimitVerdict ConnectionSlot::count_client(const ClientKey& key, uint32_t max_per_client) {
  if (!limiter_ || per_client_ || !max_per_client || key.family == 0) return LimitVerdict::Admitted;
  if (!limiter_->add_client(key, max_per_client)) return LimitVerdict::ClientFull;
  key_ = key;
  per_client_ = true;
  return LimitVerdict::Admitted;
}

void ConnectionLimiter::release(const ClientKey& key, bool per_client) {
  if (per_client) {
    Shard& s = shard_of(key);
    std::lock_guard<std::mutex> g(s.mu);
    auto it = s.counts.find(key);
    // Counted at admit() under the same key: always there (guaranteed by ConnectionSlot).
    if (it != s.counts.end() && --it->second == 0) s.counts.erase(it);
  }
  open_.fetch_sub(1, std::memory_order_relaxed);
}

uint32_t ConnectionLimiter::open_from(const ClientKey& key) {
  Shard& s = shard_of(key);
  std::lock_guard<std::mutex> g(s.mu);
  auto it = s.counts.find(key);
  return it == s.counts.end() ? 0 : it->second;
}

size_t ConnectionLimiter::clients() {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> g(s.mu);
    n += s.counts.size();
  }
  return n;
}

bool ConnectionLimiter::note_refusal(int64_t now_ms, Verdict why, uint64_t& refused_total, uint64_t& refused_client) {
  (why == Verdict::ClientFull ? refused_client_ : refused_total_).fetch_add(1, std::memory_order_relaxed);
  if (!log_limit_.allow_at(now_ms)) return false;
  refused_total = refused_total_.exchange(0, std::memory_order_relaxed);
  refused_client = refused_client_.exchange(0, std::memory_order_relaxed);
  return true;
}

}  // namespace corral::proxy
