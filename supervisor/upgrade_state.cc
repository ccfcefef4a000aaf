#include "supervisor/upgrade_state.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace corral::supervisor {

// Field by field, each read with its default when absent (a newer writer's extra fields are
// ignored, an older writer's missing ones take the default: see the versioning rule).
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FileIdentity, dev, ino, size, mtime_ns)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SlotState, index, app_generation, state, pid, generation, restarts,
                                                self_binds, kill_sent, term_sent, retire_reason, stop_reason,
                                                max_requests, last_probe, in_flight, requests, started_at_ns,
                                                cpu_wait_seen, listen_fd, listen_inode, path_inode, path_dev,
                                                waiting_checks, backoff_started_ns, backoff_failures, stdout_fd,
                                                stderr_fd, restart_at_ns, drain_deadline_ns, kill_at_ns, binary)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(PoolState, app, retired, app_generation, desired, next_index,
                                                self_binds, deaths, death_log, totals, configs, slots)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ListenerState, address, bound, fd)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ProxyState, pid, channel_fd, ready, starts, restarts, last_exit,
                                                backoff_started_ns, backoff_failures, retiring, retire_kill_at_ns)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(DrainedState, app, slot, generation, proxies)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(UpgradeState, version, from_version, binary, config_file, config_text,
                                                overrides, config_generation, listeners, has_admin, admin,
                                                control_path, control_fd, control_dev, control_ino, runtime_dev,
                                                runtime_ino, socket_gid, proxy_uid, draining, drain_since_ns,
                                                ready_sent, unattributed_leftovers, ignored_children, proxy, outgoing,
                                                drained_by, pools, waiter_fds)

namespace {
constexpr size_t kMaxState = 256u << 20;
}

std::vector<int> UpgradeState::fds() const {
  std::vector<int> out;
  auto add = [&out](int fd) {
    if (fd >= 0) out.push_back(fd);
  };
  for (auto& l : listeners) add(l.fd);
  if (has_admin) add(admin.fd);
  add(control_fd);
  add(proxy.channel_fd);
  for (auto& o : outgoing) add(o.channel_fd);
  for (auto& p : pools)
    for (auto& s : p.slots) {
      add(s.listen_fd);
      add(s.stdout_fd);
      add(s.stderr_fd);
    }
  for (int fd : waiter_fds) add(fd);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string encode_state(const UpgradeState& s) {
  nlohmann::json j = s;
  j["format"] = kUpgradeStateFormat;
  return j.dump();
}

Result<UpgradeState> decode_state(std::string_view bytes) {
  auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::Protocol, "the handed state is not a JSON object");
  if (!j.contains("format") || j["format"] != kUpgradeStateFormat)
    return fail(Errc::Protocol, std::string("the handed state is not a ") + kUpgradeStateFormat + " document");
  if (!j.contains("version") || !j["version"].is_number_integer())
    return fail(Errc::Protocol, "the handed state has no version");
  const auto version = j["version"].get<long long>();
  if (version != kUpgradeStateVersion)
    return fail(Errc::Protocol, "state format version " + std::to_string(version) + ", this binary reads version " +
                                    std::to_string(kUpgradeStateVersion));
  try {
    return j.get<UpgradeState>();
  } catch (const nlohmann::json::exception& e) {
    return fail(Errc::Protocol, std::string("the handed state is malformed: ") + e.what());
  }
}

Result<UniqueFd> write_state_memfd(const std::string& bytes) {
  UniqueFd fd(::memfd_create("corral-upgrade-state", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return fail_sys("memfd_create");
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_sys("writing the upgrade state");
    done += static_cast<size_t>(n);
  }
  // Read-only from here on: the dry run and the new image read the very bytes written.
  (void)::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

Result<std::string> read_state_fd(int fd) {
  std::string out;
  char buf[65536];
  for (off_t at = 0;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_sys("reading the upgrade state from fd " + std::to_string(fd));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    at += n;
    if (out.size() > kMaxState) return fail(Errc::TooLarge, "the upgrade state is larger than 256 MiB");
  }
  return out;
}

Result<void> set_cloexec(const std::vector<int>& fds, bool cloexec) {
  Result<void> result;
  for (int fd : fds) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0 || ::fcntl(fd, F_SETFD, cloexec ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC)) != 0) {
      if (result) result = fail_sys("fcntl(F_SETFD) on fd " + std::to_string(fd));
    }
  }
  return result;
}

int64_t to_ns(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::chrono::steady_clock::time_point from_ns(int64_t ns) {
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace corral::supervisor
