#include "tests/integration/harness/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace corral::itest {

using namespace std::chrono_literals;

namespace {

const char kRunNetns[] = "/run/netns";

std::string ip_error(const std::vector<std::string>& argv, const ProcessResult& r) {
  std::string cmd;
  for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  std::string why = r.timed_out ? "timed out" : "exit " + std::to_string(r.exit_code);
  return "`" + cmd + "` failed (" + why + "): " + r.err + r.out;
}

bool ip(const std::vector<std::string>& args, std::string* error) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult r = run_process(argv, 10s);
  if (r.exit_code == 0) return true;
  if (error) *error = ip_error(argv, r);
  return false;
}

}  // namespace

std::string NetNamespaces::unavailable_reason() {
  if (::geteuid() != 0) return "network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); running as uid " +
                                std::to_string(::geteuid());
  ProcessResult v = run_process({"ip", "-V"}, 10s);
  if (v.exit_code != 0) return "`ip` (iproute2) is not installed: packaging/install-deps.sh test installs it";
  const std::string probe = "crl" + std::to_string(::getpid()) + "-probe";
  std::string error;
  if (!ip({"netns", "add", probe}, &error)) return "cannot create a network namespace here: " + error;
  // A container may let a namespace be made and not configured (systemd-nspawn sharing the
  // host's network has no CAP_NET_ADMIN over it): try what the test does, a link up and a
  // veth pair.
  std::string reason;
  if (!ip({"-n", probe, "link", "set", "lo", "up"}, &error) ||
      !ip({"-n", probe, "link", "add", "probe-a", "type", "veth", "peer", "name", "probe-b"}, &error))
    reason = "cannot configure a network namespace here: " + error;
  ip({"netns", "del", probe}, nullptr);
  return reason;
}

NetNamespaces::NetNamespaces() : prefix_("crl" + std::to_string(::getpid()) + "-") { remove_stale(); }

NetNamespaces::~NetNamespaces() {
  // Deleting a namespace takes its veth ends (and so their peers) with it.
  for (auto it = names_.rbegin(); it != names_.rend(); ++it) ip({"netns", "del", *it}, nullptr);
}

void NetNamespaces::remove_stale() {
  DIR* d = ::opendir(kRunNetns);
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("crl", 0) != 0) continue;
    size_t dash = n.find('-');
    if (dash == std::string::npos || dash == 3) continue;
    std::string digits = n.substr(3, dash - 3);
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(n);
  }
  ::closedir(d);
  for (auto& n : stale) ip({"netns", "del", n}, nullptr);
}

bool NetNamespaces::add(const std::string& name, std::string* error) {
  const std::string ns = full(name);
  if (!ip({"netns", "add", ns}, error)) return false;
  names_.push_back(ns);
  return ip({"-n", ns, "link", "set", "lo", "up"}, error);
}

bool NetNamespaces::link(const std::string& a, const std::string& cidr_a, const std::string& b,
                         const std::string& cidr_b, std::string* error) {
  const std::string na = full(a), nb = full(b), ea = "v-" + b, eb = "v-" + a;
  // Both ends are made inside the namespaces: no interface ever appears in the machine's own.
  return ip({"-n", na, "link", "add", ea, "type", "veth", "peer", "name", eb, "netns", nb}, error) &&
         ip({"-n", na, "addr", "add", cidr_a, "dev", ea}, error) &&
         ip({"-n", nb, "addr", "add", cidr_b, "dev", eb}, error) &&
         ip({"-n", na, "link", "set", ea, "up"}, error) && ip({"-n", nb, "link", "set", eb, "up"}, error);
}

std::vector<std::string> NetNamespaces::exec(const std::string& name) const {
  return {"ip", "netns", "exec", full(name)};
}

ProcessResult NetNamespaces::run(const std::string& name, std::vector<std::string> argv,
                                 std::chrono::milliseconds timeout) const {
  std::vector<std::string> all = exec(name);
  all.insert(all.end(), argv.begin(), argv.end());
  return run_process(all, timeout);
}

bool NetNamespaces::enter(const std::string& name) const {
  const std::string path = std::string(kRunNetns) + "/" + full(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // setns(CLONE_NEWNET) moves only the calling thread.
  bool ok = ::setns(fd, CLONE_NEWNET) == 0;
  ::close(fd);
  return ok;
}

bool BackgroundProcess::start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error) {
  pid_ = spawn_logged(argv, log_path, {}, error);
  if (pid_ < 0) return false;
  reaped_ = false;
  return true;
}

bool BackgroundProcess::running(std::string* status) {
  if (pid_ <= 0) return false;
  if (!reaped_) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      reaped_ = true;
      exit_text_ = WIFEXITED(st) ? "exit " + std::to_string(WEXITSTATUS(st))
                                 : "signal " + std::to_string(WTERMSIG(st));
    }
  }
  if (status) *status = exit_text_;
  return !reaped_;
}

void BackgroundProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  // The group too: a master's workers (nginx) outlive it for a moment.
  ::kill(-pid_, SIGKILL);
  if (!reaped_) {
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  pid_ = -1;
}

}  // namespace corral::itest
