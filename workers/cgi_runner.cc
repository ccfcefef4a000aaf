#include "workers/cgi_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <thread>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/cgi/meta_variables.h"
#include "common/cgi/response_head.h"
#include "common/cgi/script_path.h"

namespace corral::worker {
namespace {

using Clock = std::chrono::steady_clock;

// ---- spawning -------------------------------------------------------------------------------

// Everything the child needs, prepared before the clone: the child shares our memory and
// may only make system calls.
struct SpawnArgs {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  ///< nullptr = ours
  int stdin_fd = -1, stdout_fd = -1;
  pid_t parent = 0;
  sigset_t child_mask;
  int err = 0;  ///< set by the child when exec (or a step before it) failed
  int stage = 0;
};

int child_main(void* p) {
  auto* a = static_cast<SpawnArgs*>(p);
  // The worker ignores SIGPIPE (it writes to pipes of programs that may exit); a CGI
  // program must get the default back. Handled signals are reset by execve itself.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  a->stage = 1;
  if (::setpgid(0, 0) != 0) goto fail;
  // If the worker dies, so does the program (its own group would otherwise outlive it).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != a->parent) goto fail;
  a->stage = 2;
  if (::dup2(a->stdin_fd, 0) < 0 || ::dup2(a->stdout_fd, 1) < 0) goto fail;
  a->stage = 3;
  if (a->cwd && ::chdir(a->cwd) != 0) goto fail;
  ::sigprocmask(SIG_SETMASK, &a->child_mask, nullptr);
  a->stage = 4;
  ::execve(a->path, a->argv, a->envp);
fail:
  a->err = errno ? errno : EINVAL;
  ::_exit(127);
}

const char* stage_name(int stage) {
  switch (stage) {
    case 1: return "process group / parent-death signal";
    case 2: return "stdin/stdout";
    case 3: return "chdir";
    default: return "exec";
  }
}

// Starts the program; returns its pid, or -1 with `why` filled in.
pid_t spawn(SpawnArgs& a, std::string& why) {
  // A small stack per thread for the child (it runs until execve, on our memory).
  alignas(16) static thread_local char stack[64 * 1024];
  sigset_t all, old;
  sigfillset(&all);
  sigemptyset(&a.child_mask);
  a.parent = ::getpid();
  // No signal handler may run in the child while it shares our memory.
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int clone_err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    why = std::string("clone: ") + std::strerror(clone_err);
    return -1;
  }
  if (a.err != 0) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    why = std::string(stage_name(a.stage)) + " " + a.path + ": " + std::strerror(a.err);
    return -1;
  }
  return pid;
}

// ---- the running program ----------------------------------------------------------------

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited with " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st))
    return std::string("killed by signal ") + std::to_string(WTERMSIG(st)) + " (" + ::strsignal(WTERMSIG(st)) + ")" +
           (WCOREDUMP(st) ? ", core dumped" : "");
  return "stopped";
}

// Owns a started program: whatever happens, its process group is killed and it is reaped.
class Program {
 public:
  explicit Program(pid_t pid) : pid_(pid) {}
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  ~Program() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    // Whatever it left running in its group (a background child) goes too.
    if (pgid_ > 0) ::kill(-pgid_, SIGKILL);
  }
  /// Waits for the exit until `deadline`; false (still running) on timeout.
  bool wait(Clock::time_point deadline) {
    if (pid_ <= 0) return true;
    for (int sleep_us = 200;;) {
      pid_t r = ::waitpid(pid_, &status_, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        pgid_ = pid_;
        pid_ = 0;
        return true;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
      if (sleep_us < 20'000) sleep_us *= 2;
    }
  }
  /// Kills the group and reaps the program.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    pgid_ = pid_;
    pid_ = 0;
  }
  pid_t pid() const { return pid_ > 0 ? pid_ : pgid_; }
  int status() const { return status_; }

 private:
  pid_t pid_;
  pid_t pgid_ = 0;
  int status_ = 0;
};

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left) + 1;
}

std::string_view header(const http1::RequestHead& h, std::string_view name) {
  for (auto& f : h.headers)
    if (iequals(f.name, name)) return f.value;
  return {};
}

std::string current_dir() {
  char buf[PATH_MAX];
  return ::getcwd(buf, sizeof buf) ? std::string(buf) : std::string();
}

}  // namespace

CgiRunner::CgiRunner(CgiSettings s) : s_(std::move(s)), tag_("app=" + s_.app) {}

Result<void> CgiRunner::check() const {
  struct stat st;
  if (!s_.root.empty()) {
    if (::stat(s_.root.c_str(), &st) != 0) return fail_sys("root " + s_.root);
    if (!S_ISDIR(st.st_mode)) return fail(Errc::Config, "root " + s_.root + " is not a folder");
    return {};
  }
  if (s_.command.empty()) return fail(Errc::Config, "no command and no root");
  const std::string& prog = s_.command[0];
  if (::stat(prog.c_str(), &st) != 0) return fail_sys("program " + prog);
  if (!S_ISREG(st.st_mode)) return fail(Errc::Config, "program " + prog + " is not a regular file");
  if (::access(prog.c_str(), X_OK) != 0) return fail_sys("program " + prog);
  return {};
}

void CgiRunner::log_miss(const cgi::RootResult& r, std::string_view path) noexcept {
  // Once per file (or path) per minute: a repeated request does not flood the log.
  if (!misses_.allow(r.path.empty() ? path : std::string_view(r.path))) return;
  if (cgi::miss_is_server_side(r.miss)) {
    CORRAL_LOG(Warn, tag_) << cgi::describe_miss(r, path) << "; answered 404 [" << path << "]";
  } else {
    CORRAL_LOG(Info, tag_) << cgi::describe_miss(r, path) << "; answered " << (r.miss == cgi::Miss::BadRequest ? 400 : 404)
                           << " [" << path << "]";
  }
}

void CgiRunner::handle(const Request& req, ResponseWriter& out) noexcept {
  // The proxy gives up after `timeout` and replaces the whole worker; finish first, so only
  // the program is killed and the answer is a clean 504.
  auto margin = std::min<std::chrono::milliseconds>(s_.timeout / 10, std::chrono::milliseconds(1000));
  run(req.head, req.body, req.has_body, out, kMaxLocalRedirects, Clock::now() + s_.timeout - margin);
}

void CgiRunner::run(const http1::RequestHead& head, std::string_view body, bool has_body, ResponseWriter& out,
                    int redirects_left, Clock::time_point deadline) noexcept {
  // ---- which program ----
  cgi::TargetParts parts = cgi::split_target(head.target);
  if (parts.path.empty() || parts.path.front() != '/') {
    out.send_simple(400, "bad request target\n");
    return;
  }
  // The proxy says which route prefix matched (X-Forwarded-Prefix); --mount is the fallback.
  std::string_view prefix;
  if (std::string fwd(header(head, "x-forwarded-prefix")); !fwd.empty())
    prefix = cgi::match_mount(parts.path, std::span<const std::string>(&fwd, 1));
  if (prefix.empty()) prefix = cgi::match_mount(parts.path, s_.mounts);
  std::string_view rest = parts.path.substr(prefix.size());
  std::optional<cgi::Script> script;
  std::string document_root;
  if (!s_.root.empty()) {
    cgi::RootResult r = cgi::resolve_in_root(s_.root, prefix, rest, /*need_exec=*/true, s_.index);
    if (!r.script) {
      log_miss(r, parts.path);
      out.send_simple(r.miss == cgi::Miss::BadRequest ? 400 : 404,
                      r.miss == cgi::Miss::BadRequest ? "bad request\n" : "not found\n");
      return;
    }
    script = std::move(r.script);
    document_root = s_.root;
  } else {
    script = cgi::fixed_script(s_.command[0], prefix, rest);
    if (!script) {
      out.send_simple(400, "bad request path\n");
      return;
    }
    if (!s_.script_filename.empty()) script->filename = s_.script_filename;
    static const std::string cwd = current_dir();
    document_root = cwd;
  }

  // ---- environment ----
  std::string_view proto = header(head, "x-forwarded-proto");
  cgi::RequestContext ctx;
  // X-Real-IP: the client a trusted proxy's X-Forwarded-For chain names (sent only then);
  // otherwise the last X-Forwarded-For address, the one the proxy saw.
  ctx.remote_addr = header(head, "x-real-ip");
  if (ctx.remote_addr.empty()) {
    ctx.remote_addr = header(head, "x-forwarded-for");
    if (auto comma = ctx.remote_addr.rfind(','); comma != std::string_view::npos)
      ctx.remote_addr = trim_ows(ctx.remote_addr.substr(comma + 1));
  }
  ctx.remote_port = header(head, "x-remote-port");
  ctx.server_port = header(head, "x-forwarded-port");
  ctx.https = iequals(proto, "https");
  ctx.server_software = s_.server_software;
  ctx.document_root = document_root;
  cgi::Variables vars = cgi::meta_variables(head, *script, ctx, has_body, body.size(), s_.env);
  std::vector<std::string> env_store;
  env_store.reserve(vars.size());
  for (auto& [k, v] : vars) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  envp.reserve(env_store.size() + 1);
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::vector<std::string> argv_store;
  std::string cwd;
  if (!s_.root.empty()) {
    argv_store.push_back(script->filename);
    // Like Apache: the program runs in its own folder.
    cwd = script->filename.substr(0, script->filename.rfind('/'));
    if (cwd.empty()) cwd = "/";
  } else {
    argv_store = s_.command;
  }
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);

  // ---- start ----
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    out.send_simple(503, "cannot create pipes\n");
    return;
  }
  UniqueFd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    out.send_simple(503, "cannot create pipes\n");
    return;
  }
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  SpawnArgs a;
  a.path = argv_store[0].c_str();
  a.argv = argv.data();
  a.envp = envp.data();
  a.cwd = cwd.empty() ? nullptr : cwd.c_str();
  a.stdin_fd = in_r.get();
  a.stdout_fd = out_w.get();
  std::string why;
  pid_t pid = spawn(a, why);
  if (pid < 0) {
    CORRAL_LOG(Error, tag_) << "cannot run " << argv_store[0] << ": " << why;
    out.send_simple(502, "bad gateway: the CGI program could not be started\n");
    return;
  }
  Program prog(pid);
  in_r.reset();
  out_w.reset();
  (void)!::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  (void)!::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  // ~1 MiB pipes: fewer wake-ups for big bodies (best effort).
  ::fcntl(in_w.get(), F_SETPIPE_SZ, 1 << 20);
  if (body.empty()) in_w.reset();

  // ---- exchange ----
  const bool is_head = head.method == "HEAD";
  size_t body_off = 0;
  std::string buf;
  cgi::ResponseHeadParser parser;
  cgi::ResponseHead resp;
  bool head_done = false, eof = false, timed_out = false;
  char tmp[64 * 1024];
  while (!eof) {
    pollfd p[2];
    int n = 0;
    p[n++] = pollfd{out_r.get(), POLLIN, 0};
    if (in_w) p[n++] = pollfd{in_w.get(), POLLOUT, 0};
    int left = ms_left(deadline);
    if (left == 0) {
      timed_out = true;
      break;
    }
    int r = ::poll(p, static_cast<nfds_t>(n), left);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    if (n == 2 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = ::write(in_w.get(), body.data() + body_off, body.size() - body_off);
      if (w > 0) body_off += static_cast<size_t>(w);
      // EPIPE: the program does not read its body; that is its business.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || body_off == body.size()) in_w.reset();
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t got = ::read(out_r.get(), tmp, sizeof tmp);
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    if (got == 0) {
      eof = true;
      break;
    }
    std::string_view data(tmp, static_cast<size_t>(got));
    if (head_done) {
      if (!is_head && !out.send_body(data)) break;  // the proxy is gone
      continue;
    }
    buf.append(data);
    auto st = parser.parse(buf, resp);
    if (st == cgi::ResponseHeadParser::Status::Incomplete) continue;
    if (st == cgi::ResponseHeadParser::Status::Error) {
      CORRAL_LOG(Warn, tag_) << argv_store[0] << ": invalid response: " << parser.error();
      prog.kill();
      out.send_simple(502, "bad gateway: invalid CGI response\n");
      return;
    }
    head_done = true;
    if (resp.kind == cgi::ResponseKind::LocalRedirect) {
      prog.kill();
      if (redirects_left <= 0) {
        CORRAL_LOG(Warn, tag_) << "too many local redirects at " << resp.location;
        out.send_simple(502, "bad gateway: too many CGI local redirects\n");
        return;
      }
      // RFC 3875 §6.2.2: serve the new path as a GET, with no body.
      http1::RequestHead next;
      next.method = "GET";
      next.target = resp.location;
      next.version_minor = head.version_minor;
      next.host = head.host;
      for (auto& h : head.headers)
        if (!iequals(h.name, "content-length") && !iequals(h.name, "content-type")) next.headers.push_back(h);
      run(next, {}, false, out, redirects_left - 1, deadline);
      return;
    }
    if (!out.send_head(resp.status, resp.headers, resp.content_length, resp.reason)) break;
    if (buf.size() > parser.consumed() && !is_head) {
      if (!out.send_body(std::string_view(buf).substr(parser.consumed()))) break;
    }
  }

  if (!eof || timed_out) {
    prog.kill();
    if (timed_out) {
      CORRAL_LOG(Warn, tag_) << argv_store[0] << " ran past the timeout of " << s_.timeout.count()
                             << "ms; its process group was killed [" << head.method << " " << head.target << "]";
      if (!out.head_sent()) {
        out.close_after();
        out.send_simple(504, "gateway timeout: the CGI program took too long\n");
      } else {
        out.abort();
      }
    } else {
      out.abort();  // the proxy went away, or a read failed
    }
    return;
  }
  if (!head_done) {
    // Give it a moment to finish dying so the log says how it ended.
    bool exited = prog.wait(std::min(deadline, Clock::now() + std::chrono::milliseconds(500)));
    CORRAL_LOG(Warn, tag_) << argv_store[0] << " ended its output without a complete header block"
                           << (exited ? " (" + describe_status(prog.status()) + ")" : std::string());
    out.send_simple(502, "bad gateway: the CGI program sent no valid response\n");
    return;
  }
  out.finish();
  if (!prog.wait(deadline)) {
    CORRAL_LOG(Warn, tag_) << argv_store[0] << " closed its output but kept running past the timeout; killed";
    prog.kill();
    return;
  }
  int st = prog.status();
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
    CORRAL_LOG(Warn, tag_) << argv_store[0] << " " << describe_status(st) << " after its response";
  }
}

}  // namespace corral::worker
