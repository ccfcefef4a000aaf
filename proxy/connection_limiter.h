#pragma once
// A listener's connection limits ([[listener]] max_connections and
// max_connections_per_client), decided when a connection is accepted, before any read, TLS
// handshake or allocation for it. Every loop thread accepts on the same listener, so the
// counts are shared: the listener's total is one atomic, the per-client counts live in a
// small table split in shards, each under its own mutex (a shard's critical section is one
// hash lookup, no I/O, no logging). A client is its IPv4 address, or the /64 prefix of its
// IPv6 address (one end site: an attacker owns the whole /64, a NAT'd office one IPv4).
//
// One limiter per listener, kept across reloads by listener (Server keeps them in
// RuntimeState, like the listener's metrics), so connections accepted under an earlier
// snapshot are still counted and released exactly once.
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/base/log_throttle.h"

namespace corral::proxy {

/// What the per-client limit counts a connection against: an IPv4 address (IPv4-mapped IPv6
/// addresses included) or the first 64 bits of an IPv6 address. `family` 0: no IP client
/// (a Unix socket), never limited per client.
struct ClientKey {
  uint64_t hi = 0;  ///< IPv4: the address; IPv6: the /64 prefix
  uint8_t family = 0;
  bool operator==(const ClientKey&) const = default;
};

/// The key of a peer address from accept().
ClientKey client_key(const sockaddr_storage& peer);
/// "1.2.3.4" or "2001:db8:1:2::/64" (for log lines).
std::string client_key_text(const ClientKey& k);

class ConnectionLimiter;
enum class LimitVerdict { Admitted, ListenerFull, ClientFull };

/// The place an admitted connection holds in its listener's counts; given back exactly once
/// (release(), or the destructor). Movable, loop-affine (like the connection that holds it).
class ConnectionSlot {
 public:
  ConnectionSlot() = default;
  ConnectionSlot(ConnectionLimiter* limiter, ClientKey key, bool per_client)
      : limiter_(limiter), key_(key), per_client_(per_client) {}
  ConnectionSlot(ConnectionSlot&& o) noexcept { *this = std::move(o); }
  ConnectionSlot& operator=(ConnectionSlot&& o) noexcept;
  ~ConnectionSlot() { release(); }
  void release();
  bool held() const { return limiter_ != nullptr; }
  /// A slot admitted without a per-client count (a proxy_protocol listener, where the peer
  /// is the balancer) now counts against `key`, the client the PROXY header named, within
  /// `max_per_client` (0: no limit, nothing counted). ClientFull leaves the slot as it was.
  LimitVerdict count_client(const ClientKey& key, uint32_t max_per_client);

 private:
  ConnectionLimiter* limiter_ = nullptr;  // outlives the slot (the connection keeps its listener's runtime)
  ClientKey key_;
  bool per_client_ = false;
};

class ConnectionLimiter {
 public:
  using Verdict = LimitVerdict;

  ConnectionLimiter() = default;
  ConnectionLimiter(const ConnectionLimiter&) = delete;
  ConnectionLimiter& operator=(const ConnectionLimiter&) = delete;

  /// Any thread. Counts the connection when it is admitted: within `max_total` open
  /// connections on the listener and `max_per_client` from `key` (0 = no limit; a key of
  /// family 0 is never limited per client). The slot is held only when admitted.
  Verdict admit(const ClientKey& key, uint32_t max_total, uint32_t max_per_client, ConnectionSlot& slot);

  /// Any thread: open connections counted on this listener now.
  int64_t open() const { return open_.load(std::memory_order_relaxed); }
  /// Any thread: connections now counted from `key` (0 when it has none).
  uint32_t open_from(const ClientKey& key);
  /// Any thread: how many clients the per-client table holds.
  size_t clients();

  /// Any thread: notes one refusal; true for at most one caller per second, which should log
  /// `refused` (the refusals since the last line, this one included) and its reason.
  bool note_refusal(int64_t now_ms, Verdict why, uint64_t& refused_total, uint64_t& refused_client);

 private:
  friend class ConnectionSlot;
  void release(const ClientKey& key, bool per_client);
  /// The per-client half of admit(): counts one more from `key` unless it has max_per_client.
  bool add_client(const ClientKey& key, uint32_t max_per_client);

  struct KeyHash {
    size_t operator()(const ClientKey& k) const noexcept {
      uint64_t x = k.hi * 0x9E3779B97F4A7C15ull;
      return static_cast<size_t>(x ^ (x >> 29) ^ k.family);
    }
  };
  struct alignas(64) Shard {
    std::mutex mu;
    std::unordered_map<ClientKey, uint32_t, KeyHash> counts;
  };
  static constexpr size_t kShards = 16;
  Shard& shard_of(const ClientKey& k) { return shards_[(KeyHash{}(k) >> 7) % kShards]; }

  alignas(64) std::atomic<int64_t> open_{0};
  std::array<Shard, kShards> shards_;
  // Refusals since the last log line, by reason, and when the next line may be written.
  alignas(64) std::atomic<uint64_t> refused_total_{0};
  std::atomic<uint64_t> refused_client_{0};
  LogThrottle log_limit_;
};

}  // namespace corral::proxy
