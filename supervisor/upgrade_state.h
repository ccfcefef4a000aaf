#pragma once
// What a supervisor image hands to the next one when it upgrades in place (corralctl
// upgrade, SIGUSR2; arbiter_upgrade.cc): a versioned JSON document written to a memfd whose
// number goes on the new image's command line (`--upgrade-state N`). File descriptors are
// named by number inside it; their FD_CLOEXEC is cleared just before execve (fds()) and set
// again by the image that adopts them.
//
// Versioning: `version` is kUpgradeStateVersion. A reader refuses any other (the dry run
// `corral-supervisor --upgrade-check N` of the new binary says so, and the old image keeps
// running). Adding a field (read with its default when absent) keeps the version; removing
// or retyping one, or changing what one means, bumps it.
//
// Times are steady_clock (CLOCK_MONOTONIC) nanoseconds: the same clock in both images.
// Pure data and functions, no loop; any thread.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "supervisor/file_identity.h"

namespace corral::supervisor {

inline constexpr int kUpgradeStateVersion = 1;
/// The "format" field: tells a state document from any other JSON.
inline constexpr const char* kUpgradeStateFormat = "corral-supervisor-state";

/// One worker (WorkerSlot) and its process.
struct SlotState {
  int index = 0;
  uint64_t app_generation = 0;  ///< the app's config generation it runs (PoolState::configs)
  std::string state;            ///< WorkerSlot::state_name()
  pid_t pid = 0;
  uint64_t generation = 0;      ///< process incarnation
  int restarts = 0;
  bool self_binds = false;
  bool kill_sent = false;
  bool term_sent = false;
  std::string retire_reason;
  std::string stop_reason;
  uint64_t max_requests = 0;
  std::string last_probe;
  uint64_t in_flight = 0;
  uint64_t requests = 0;
  int64_t started_at_ns = 0;
  double cpu_wait_seen = 0;
  int listen_fd = -1;           ///< the kept listening socket; -1 when self_binds
  uint64_t listen_inode = 0;
  uint64_t path_inode = 0;
  uint64_t path_dev = 0;
  int waiting_checks = 0;
  int64_t backoff_started_ns = 0;
  int backoff_failures = 0;
  int stdout_fd = -1;           ///< read ends of the worker's output pipes; -1 = none
  int stderr_fd = -1;
  int64_t restart_at_ns = 0;    ///< pending timers as deadlines; 0 = not armed
  int64_t drain_deadline_ns = 0;
  int64_t kill_at_ns = 0;
  FileIdentity binary;          ///< corral-worker as it was when this process started (cgi, wsgi)

  bool operator==(const SlotState&) const = default;
};

/// One app's pool (AppPool), running or retired (removed by a reload, still draining).
struct PoolState {
  std::string app;
  bool retired = false;
  uint64_t app_generation = 1;
  int desired = 1;
  int next_index = 0;
  bool self_binds = false;
  std::map<std::string, uint64_t> deaths;  ///< exits by reason
  nlohmann::json death_log = nlohmann::json::array();  ///< DeathLog::state()
  nlohmann::json totals = nlohmann::json::object();    ///< AppTotals::state()
  /// The app's config of each generation still running, as conf::to_snapshot() of a
  /// Config holding only that app (the running generation of a running app comes from the
  /// config text instead).
  std::map<uint64_t, std::string> configs;
  std::vector<SlotState> slots;

  bool operator==(const PoolState&) const = default;
};

/// A bound listening socket.
struct ListenerState {
  std::string address;
  std::string bound;
  int fd = -1;

  bool operator==(const ListenerState&) const = default;
};

/// The running corral-proxy and the supervisor's end of its control channel.
struct ProxyState {
  pid_t pid = 0;      ///< 0: none runs (it is started as after a crash)
  int channel_fd = -1;
  bool ready = false;
  int starts = 0;
  int restarts = 0;
  nlohmann::json last_exit = nullptr;
  int64_t backoff_started_ns = 0;
  int backoff_failures = 0;
  bool retiring = false;          ///< an old proxy finishing its connections after a replacement
  int64_t retire_kill_at_ns = 0;  ///< when a retiring proxy is killed if still there; 0 = never

  bool operator==(const ProxyState&) const = default;
};

/// Proxies that reported a worker drained (a worker is stopped once every running proxy did).
struct DrainedState {
  std::string app;
  int slot = 0;
  uint64_t generation = 0;
  std::vector<pid_t> proxies;

  bool operator==(const DrainedState&) const = default;
};

struct UpgradeState {
  int version = kUpgradeStateVersion;
  std::string from_version;  ///< CORRAL_VERSION of the image that wrote it
  std::string binary;        ///< the executable the new image was started from
  std::string config_file;
  std::string config_text;   ///< the text last loaded (not re-read: the file may have changed since)
  nlohmann::json overrides = nlohmann::json::object();  ///< RuntimeOverrides::state()
  uint64_t config_generation = 1;
  std::vector<ListenerState> listeners;
  bool has_admin = false;
  ListenerState admin;
  std::string control_path;
  int control_fd = -1;
  uint64_t control_dev = 0;
  uint64_t control_ino = 0;
  uint64_t runtime_dev = 0;
  uint64_t runtime_ino = 0;
  uint32_t socket_gid = static_cast<uint32_t>(-1);
  uint32_t proxy_uid = static_cast<uint32_t>(-1);
  bool draining = false;
  int64_t drain_since_ns = 0;
  bool ready_sent = false;
  std::vector<std::string> unattributed_leftovers;  ///< newest last
  std::map<pid_t, unsigned long long> ignored_children;  ///< Strays: never strays (pid → start ticks)
  ProxyState proxy;
  /// Proxies on their way out (retiring after a replacement, or a failed replacement being
  /// killed): their channels must stay open until they exit.
  std::vector<ProxyState> outgoing;
  std::vector<DrainedState> drained_by;
  std::vector<PoolState> pools;
  /// Control connections (POST /upgrade) waiting for the upgrade's answer: the new image
  /// gives it.
  std::vector<int> waiter_fds;

  bool operator==(const UpgradeState&) const = default;

  /// Every fd number the state names (≥ 0), each once.
  std::vector<int> fds() const;
};

/// The document (JSON text), with "format" and "version".
std::string encode_state(const UpgradeState& s);
/// Reads a document made by encode_state. Never throws: not JSON, another format, another
/// version ("state format version 2, this binary reads 1") or a mistyped field → an error
/// naming it.
[[nodiscard]] Result<UpgradeState> decode_state(std::string_view bytes);

/// A sealed-size memfd (CLOEXEC) holding `bytes`, read from offset 0 by read_state_fd().
[[nodiscard]] Result<UniqueFd> write_state_memfd(const std::string& bytes);
/// The whole content of fd (from offset 0; at most 256 MiB).
[[nodiscard]] Result<std::string> read_state_fd(int fd);

/// Sets (cloexec = true) or clears FD_CLOEXEC on each fd. Returns the first failure (the
/// others are still done).
[[nodiscard]] Result<void> set_cloexec(const std::vector<int>& fds, bool cloexec);

/// steady_clock ⇄ nanoseconds since its epoch (CLOCK_MONOTONIC); 0 ⇄ the epoch itself.
int64_t to_ns(std::chrono::steady_clock::time_point t);
std::chrono::steady_clock::time_point from_ns(int64_t ns);

}  // namespace corral::supervisor
