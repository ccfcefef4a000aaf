#include "workers/launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/base/strings.h"

extern char** environ;

namespace corral::workers {
namespace {

// Which step failed in the child; reported with errno through the CLOEXEC pipe.
enum class Stage : int { Setup = 1, Fds = 2, Chdir = 3, Exec = 4, Limits = 5, Identity = 6 };

struct ChildReport {
  int stage = 0;
  int err = 0;
};

const char* stage_name(Stage s) {
  switch (s) {
    case Stage::Setup: return "child setup";
    case Stage::Fds: return "fd mapping";
    case Stage::Chdir: return "chdir";
    case Stage::Exec: return "exec";
    case Stage::Limits: return "setrlimit";
    case Stage::Identity: return "dropping privileges for";
  }
  return "child";
}

// Everything the child needs, computed before fork: after fork only async-signal-safe
// calls are allowed (no allocation).
struct Prepared {
  std::string path;
  std::vector<std::string> argv_store;
  std::vector<char*> argv;
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  char* listen_pid = nullptr;  // points into env_store: "LISTEN_PID=" + digits to fill in
  std::vector<FdMap> fds;      // including 0/1/2
  int min_free = 3;            // first fd above every target
};

bool is_listen_var(std::string_view kv) {
  for (std::string_view name : {"LISTEN_FDS=", "LISTEN_PID=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET="})
    if (kv.substr(0, name.size()) == name) return true;
  return false;
}

std::string resolve_program(const std::string& argv0, const std::string& path_var) {
  if (argv0.find('/') != std::string::npos) return argv0;
  std::string first;
  for (auto dir : split(path_var, ':')) {
    if (dir.empty()) continue;
    std::string candidate = std::string(dir) + "/" + argv0;
    if (first.empty()) first = candidate;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  // Not found: exec the first candidate so the child reports ENOENT like any exec failure.
  return first.empty() ? argv0 : first;
}

void build_env(const LaunchSpec& spec, Prepared& p) {
  // name → "name=value", later entries replace earlier ones, order kept stable.
  std::vector<std::string>& out = p.env_store;
  auto put = [&out](std::string kv) {
    auto eq = kv.find('=');
    std::string_view name(kv.data(), eq == std::string::npos ? kv.size() : eq + 1);
    for (auto& existing : out)
      if (std::string_view(existing).substr(0, name.size()) == name) {
        existing = std::move(kv);
        return;
      }
    out.push_back(std::move(kv));
  };
  if (spec.inherit_environment) {
    for (char** e = environ; e && *e; ++e)
      if (!is_listen_var(*e)) put(*e);
  } else {
    put(std::string("PATH=") + kChildPath);
  }
  for (auto& [k, v] : spec.env) put(k + "=" + v);
  if (spec.listen_fds) {
    int n = 0;
    for (auto& m : spec.fds)
      if (m.child_fd >= 3) ++n;
    put("LISTEN_FDS=" + std::to_string(n));
    put("LISTEN_PID=" + std::string(20, '0'));
  }
  std::string path_var = kChildPath;
  for (auto& kv : out) {
    if (kv.rfind("PATH=", 0) == 0) path_var = kv.substr(5);
    p.envp.push_back(kv.data());
    if (kv.rfind("LISTEN_PID=", 0) == 0) p.listen_pid = kv.data() + 11;
  }
  p.envp.push_back(nullptr);
  p.path = resolve_program(spec.argv[0], path_var);
}

// Async-signal-safe decimal formatting into a buffer that has room for 20 digits.
void write_decimal(char* out, long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

[[noreturn]] void child_fail(int report_fd, Stage stage, int err) {
  ChildReport r{static_cast<int>(stage), err};
  ssize_t w = ::write(report_fd, &r, sizeof r);
  (void)w;
  _exit(127);
}

// Runs in the child between fork and exec. Async-signal-safe calls only.
[[noreturn]] void run_child(Prepared& p, const LaunchSpec& spec, int report_w, pid_t parent) {
  ::setpgid(0, 0);
  if (::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal) != 0) child_fail(report_w, Stage::Setup, errno);
  if (::getppid() != parent) _exit(127);  // the parent died before prctl took effect

  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);  // SIGKILL/SIGSTOP fail: fine

  // Move the report pipe and every source out of the way of the target numbers, then dup2
  // into place (dup2 clears CLOEXEC on the target only).
  int report = ::fcntl(report_w, F_DUPFD_CLOEXEC, p.min_free);
  if (report < 0) child_fail(report_w, Stage::Fds, errno);
  int tmp[64];
  size_t n = std::min<size_t>(p.fds.size(), 64);
  for (size_t i = 0; i < n; ++i) {
    tmp[i] = ::fcntl(p.fds[i].parent_fd, F_DUPFD_CLOEXEC, p.min_free);
    if (tmp[i] < 0) child_fail(report, Stage::Fds, errno);
  }
  for (size_t i = 0; i < n; ++i)
    if (::dup2(tmp[i], p.fds[i].child_fd) < 0) child_fail(report, Stage::Fds, errno);
  for (int fd = 0; fd < p.min_free; ++fd) {
    bool mapped = false;
    for (size_t i = 0; i < n; ++i) mapped = mapped || p.fds[i].child_fd == fd;
    if (!mapped) ::close(fd);
  }
  // Everything at or above min_free (inherited or our temporaries) goes away at exec.
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
  if (::syscall(SYS_close_range, static_cast<unsigned>(p.min_free), ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    long max = ::sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 1 << 20) max = 1 << 20;
    for (int fd = p.min_free; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }

  for (const RLimit& l : spec.rlimits) {
    rlimit r{l.value, l.value};
    if (::setrlimit(l.resource, &r) != 0) child_fail(report, Stage::Limits, errno);
  }
  if (spec.umask >= 0) ::umask(static_cast<mode_t>(spec.umask));
  if (spec.gid != static_cast<gid_t>(-1)) {
    if (::setgroups(1, &spec.gid) != 0 || ::setgid(spec.gid) != 0) child_fail(report, Stage::Identity, errno);
  }
  if (spec.uid != static_cast<uid_t>(-1) && ::setuid(spec.uid) != 0) child_fail(report, Stage::Identity, errno);

  if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) child_fail(report, Stage::Chdir, errno);
  if (p.listen_pid) write_decimal(p.listen_pid, static_cast<long>(::getpid()));

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve(p.path.c_str(), p.argv.data(), p.envp.data());
  child_fail(report, Stage::Exec, errno);
}

struct Pipe {
  UniqueFd r, w;
};

Result<Pipe> make_pipe(const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_sys(std::string("pipe for ") + what);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

bool substitute_socket(LaunchSpec& spec, const std::string& path) {
  static constexpr std::string_view kPlaceholder = "{socket}";
  bool found = false;
  auto replace_in = [&](std::string& s) {
    for (size_t pos = s.find(kPlaceholder); pos != std::string::npos; pos = s.find(kPlaceholder, pos + path.size())) {
      s.replace(pos, kPlaceholder.size(), path);
      found = true;
    }
  };
  for (auto& a : spec.argv) replace_in(a);
  for (auto& kv : spec.env) replace_in(kv.second);
  return found;
}

Result<Child> SystemLauncher::spawn(const LaunchSpec& spec) {
  if (spec.argv.empty()) return fail(Errc::InvalidInput, "launch: empty command");
  if (spec.fds.size() > 60) return fail(Errc::InvalidInput, "launch: too many fds");

  Prepared p;
  build_env(spec, p);
  p.argv_store = spec.argv;
  for (auto& a : p.argv_store) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);

  auto report = make_pipe("exec status");
  if (!report) return fail(report.error());
  Child child;
  Pipe out, err;
  UniqueFd devnull;
  bool stdin_mapped = false;
  for (auto& m : spec.fds) stdin_mapped = stdin_mapped || m.child_fd == 0;
  if (!stdin_mapped) {
    devnull.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!devnull) return fail_sys("open /dev/null");
    p.fds.push_back({devnull.get(), 0});
  }
  if (spec.capture_output) {
    auto o = make_pipe("stdout");
    auto e = make_pipe("stderr");
    if (!o) return fail(o.error());
    if (!e) return fail(e.error());
    out = std::move(*o);
    err = std::move(*e);
    p.fds.push_back({out.w.get(), 1});
    p.fds.push_back({err.w.get(), 2});
  } else {
    p.fds.push_back({1, 1});
    p.fds.push_back({2, 2});
  }
  for (auto& m : spec.fds) p.fds.push_back(m);
  for (auto& m : p.fds) p.min_free = std::max(p.min_free, m.child_fd + 1);

  // Block signals across fork so none runs the supervisor's handlers in the child before
  // the child resets them.
  sigset_t all, old;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, &old);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) run_child(p, spec, report->w.get(), parent);
  int fork_errno = errno;
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = fork_errno;
    return fail_sys("fork for " + spec.argv[0]);
  }
  ::setpgid(pid, pid);  // also done in the child; whichever runs first wins (EACCES after exec is fine)
  report->w.reset();
  out.w.reset();
  err.w.reset();

  ChildReport r;
  ssize_t got;
  do {
    got = ::read(report->r.get(), &r, sizeof r);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof r)) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    Error e;
    e.code = Errc::System;
    e.sys_errno = r.err;
    e.context = std::string(stage_name(static_cast<Stage>(r.stage))) + " " +
                (static_cast<Stage>(r.stage) == Stage::Chdir ? spec.cwd : p.path);
    return fail(std::move(e));
  }
  child.pid = pid;
  if (spec.capture_output) {
    ::fcntl(out.r.get(), F_SETFL, ::fcntl(out.r.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(err.r.get(), F_SETFL, ::fcntl(err.r.get(), F_GETFL) | O_NONBLOCK);
    child.stdout_fd = std::move(out.r);
    child.stderr_fd = std::move(err.r);
  }
  return child;
}

}  // namespace corral::workers
