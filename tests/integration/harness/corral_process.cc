#include "tests/integration/harness/corral_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "tests/integration/harness/audits.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {

CorralProcess::CorralProcess(const TempRuntime& rt, std::string config_path, std::vector<std::string> launcher)
    : rt_(rt), config_path_(std::move(config_path)), launcher_(std::move(launcher)), log_path_(rt.file("corral.log")),
      notify_path_(rt.file("notify.sock")) {}

CorralProcess::~CorralProcess() {
  if (notify_fd_ >= 0) ::close(notify_fd_);
  kill_all();
}

bool CorralProcess::start(std::chrono::milliseconds ready_timeout, std::string* error) {
  notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, notify_path_.c_str(), sizeof sa.sun_path - 1);
  ::unlink(notify_path_.c_str());
  if (notify_fd_ < 0 || ::bind(notify_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    if (error) *error = std::string("notify socket: ") + std::strerror(errno);
    return false;
  }

  std::vector<std::string> argv = launcher_;
  argv.insert(argv.end(), {binary_.empty() ? bin_path("corral-supervisor") : binary_, "-c", config_path_});
  pid_ = spawn_logged(argv, log_path_, {"NOTIFY_SOCKET=" + notify_path_}, error);
  if (pid_ < 0) return false;
  seen_.insert(pid_);
  ProcInfo info;
  if (proc_info(pid_, info)) start_ticks_ = info.start_ticks;
  return wait_ready(ready_timeout, error);
}

bool CorralProcess::wait_ready(std::chrono::milliseconds timeout, std::string* error) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!running()) {
      if (error)
        *error = "corral-supervisor exited before READY=1 (status " + std::to_string(exit_status_) + ")";
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (error) *error = "no READY=1 on NOTIFY_SOCKET within " + std::to_string(timeout.count()) + " ms";
      return false;
    }
    // Short slices so an early exit of the supervisor is noticed promptly.
    pollfd p{notify_fd_, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::recv(notify_fd_, buf, sizeof buf - 1, 0);
    if (got <= 0) continue;
    std::string msg(buf, static_cast<size_t>(got));
    size_t start = 0;
    while (start < msg.size()) {
      size_t nl = msg.find('\n', start);
      std::string line = msg.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if (line == "READY=1") return true;
      if (nl == std::string::npos) break;
      start = nl + 1;
    }
  }
}

std::vector<std::string> CorralProcess::notifications(std::chrono::milliseconds wait) {
  std::vector<std::string> out;
  int timeout = static_cast<int>(wait.count());
  for (;;) {
    pollfd p{notify_fd_, POLLIN, 0};
    if (notify_fd_ < 0 || ::poll(&p, 1, out.empty() ? timeout : 0) <= 0) return out;
    char buf[4096];
    ssize_t got = ::recv(notify_fd_, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (got <= 0) return out;
    out.emplace_back(buf, static_cast<size_t>(got));
  }
}

bool CorralProcess::running() {
  if (pid_ <= 0 || reaped_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return false;
  }
  return true;
}

nlohmann::json CorralProcess::status(std::string* error) {
  ProcessResult r = run_process(
      {bin_path("corralctl"), "--socket", rt_.runtime_dir() + "/control.sock", "status", "--json"}, 10s);
  if (r.exit_code != 0) {
    if (error) *error = "corralctl status failed (exit " + std::to_string(r.exit_code) + "): " + r.err + r.out;
    return nullptr;
  }
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded()) {
    if (error) *error = "corralctl status printed no valid JSON: " + r.out;
    return nullptr;
  }
  if (j.contains("pid") && j["pid"].is_number_integer()) seen_.insert(j["pid"].get<pid_t>());
  if (j.contains("proxy") && j["proxy"].is_object() && j["proxy"].contains("pid") &&
      j["proxy"]["pid"].is_number_integer())
    seen_.insert(j["proxy"]["pid"].get<pid_t>());
  if (j.contains("apps") && j["apps"].is_array())
    for (auto& app : j["apps"])
      if (app.contains("name") && app["name"].is_string())
        for (pid_t p : worker_pids(j, app["name"].get<std::string>()))
          if (p > 0) seen_.insert(p);
  return j;
}

int CorralProcess::port(size_t index) {
  nlohmann::json j = status();
  if (!j.is_object() || !j.contains("listeners") || !j["listeners"].is_array() || j["listeners"].size() <= index)
    return 0;
  auto& l = j["listeners"][index];
  if (!l.contains("bound") || !l["bound"].is_string()) return 0;
  std::string bound = l["bound"].get<std::string>();
  size_t colon = bound.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(bound.c_str() + colon + 1);
}

namespace {
const nlohmann::json* find_app(const nlohmann::json& status, const std::string& app) {
  if (!status.is_object() || !status.contains("apps") || !status["apps"].is_array()) return nullptr;
  for (auto& a : status["apps"])
    if (a.is_object() && a.value("name", "") == app && a.contains("workers") && a["workers"].is_array())
      return &a["workers"];
  return nullptr;
}
}  // namespace

std::vector<pid_t> CorralProcess::worker_pids(const nlohmann::json& status, const std::string& app) {
  std::vector<pid_t> out;
  if (auto* ws = find_app(status, app))
    for (auto& w : *ws)
      if (w.is_object() && w.contains("pid") && w["pid"].is_number_integer()) out.push_back(w["pid"].get<pid_t>());
  return out;
}

std::vector<std::string> CorralProcess::worker_sockets(const nlohmann::json& status, const std::string& app) {
  std::vector<std::string> out;
  if (auto* ws = find_app(status, app))
    for (auto& w : *ws)
      if (w.is_object() && w.contains("socket") && w["socket"].is_string()) out.push_back(w["socket"].get<std::string>());
  return out;
}

void CorralProcess::signal(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

std::optional<int> CorralProcess::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
  if (pid_ <= 0) return std::nullopt;
  return exit_status_;
}

std::optional<int> CorralProcess::stop(std::chrono::milliseconds timeout, int sig) {
  signal(sig);
  return wait_exit(timeout);
}

void CorralProcess::kill_all() {
  if (pid_ <= 0) return;
  std::vector<ProcInfo> left = leftover_processes(pid_, rt_.path(), seen_, start_ticks_);
  if (!reaped_) ::kill(-pid_, SIGKILL);
  for (auto& p : left)
    if (p.pid > 1 && p.pid != ::getpid()) ::kill(p.pid, SIGKILL);
  if (!reaped_) {
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  }
}

std::string CorralProcess::log() const { return read_file(log_path_); }

}  // namespace corral::itest
