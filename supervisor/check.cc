#include "supervisor/check.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/base/strings.h"
#include "supervisor/app_pool.h"
#include "workers/launcher.h"

namespace corral::supervisor {
namespace {

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

/// The checks of one app, run by whoever they are for: this process, or a child that took
/// the app's identity. `who` is "" or " by user 'shop'" for messages.
class AppChecker {
 public:
  AppChecker(const conf::App& app, std::string who) : app_(app), who_(std::move(who)), key_("app." + app.name + ".") {}

  std::vector<conf::KeyProblem> run() {
    // A wsgi app's command is corral-worker's; a cgi app with root has none.
    if (!app_.command.empty()) check_command(app_.command[0]);
    check_folder("cwd", app_.cwd);
    if ((app_.kind == conf::AppKind::Cgi || app_.kind == conf::AppKind::Fastcgi) && !app_.root.empty())
      check_folder("root", app_.root);
    return std::move(out_);
  }

 private:
  void problem(const std::string& key, std::string message, std::string hint = {}) {
    out_.push_back(conf::KeyProblem{key_ + key, std::move(message), std::move(hint)});
  }

  // effective ids: in a child that took the app's identity, those are the worker's.
  static bool may(const std::string& path, int mode) { return ::faccessat(AT_FDCWD, path.c_str(), mode, AT_EACCESS) == 0; }

  /// Why `path` cannot be exec'd, or "" when it can.
  std::string program_problem(const std::string& path) const {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return path + " does not exist";
      if (errno == EACCES) return path + " cannot be reached" + who_ + " (a folder on the way is not searchable)";
      return path + ": " + std::strerror(errno);
    }
    if (S_ISDIR(st.st_mode)) return path + " is a folder, not a program";
    if (!S_ISREG(st.st_mode)) return path + " is not a regular file";
    if (!may(path, X_OK)) return path + " is not executable" + who_;
    return {};
  }

  void check_command(const std::string& program) {
    if (program.find('/') != std::string::npos) {
      if (auto why = program_problem(program); !why.empty()) problem("command", why);
      return;
    }
    // The launcher's lookup: the PATH of the worker's environment, first executable wins.
    std::string path_var = workers::kChildPath;
    for (auto& [name, value] : app_.env)
      if (name == "PATH") path_var = value;
    std::string unusable;
    for (auto dir : split(path_var, ':')) {
      if (dir.empty()) continue;
      std::string candidate = std::string(dir) + "/" + program;
      if (candidate[0] != '/') candidate = app_.cwd + "/" + candidate;  // exec runs after chdir(cwd)
      std::string why = program_problem(candidate);
      if (why.empty()) return;
      if (unusable.empty() && why.find(" does not exist") == std::string::npos) unusable = why;
    }
    if (!unusable.empty()) {
      problem("command", "'" + program + "' is found in PATH, but " + unusable);
    } else {
      problem("command", "'" + program + "' is not found in PATH (" + path_var + ")",
              "write the program's full path, or set PATH in env");
    }
  }

  void check_folder(const std::string& key, const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) problem(key, path + " does not exist");
      else if (errno == EACCES) problem(key, path + " cannot be reached" + who_ + " (a folder on the way is not searchable)");
      else problem(key, path + ": " + std::strerror(errno));
      return;
    }
    if (!S_ISDIR(st.st_mode)) problem(key, path + " is not a folder");
    else if (!may(path, X_OK)) problem(key, path + " cannot be entered" + who_);
  }

  const conf::App& app_;
  std::string who_;
  std::string key_;
  std::vector<conf::KeyProblem> out_;
};

// key \0 message \0 hint \0, repeated: what the child sends back.
std::string encode(const std::vector<conf::KeyProblem>& problems) {
  std::string out;
  for (auto& p : problems) {
    for (const std::string* s : {&p.key, &p.message, &p.hint}) {
      out += *s;
      out += '\0';
    }
  }
  return out;
}

std::vector<conf::KeyProblem> decode(const std::string& bytes) {
  std::vector<std::string> fields;
  for (size_t at = 0; at < bytes.size();) {
    size_t end = bytes.find('\0', at);
    if (end == std::string::npos) break;
    fields.push_back(bytes.substr(at, end - at));
    at = end + 1;
  }
  std::vector<conf::KeyProblem> out;
  for (size_t i = 0; i + 2 < fields.size(); i += 3) out.push_back({fields[i], fields[i + 1], fields[i + 2]});
  return out;
}

/// Runs the app's checks in a child with the worker's uid/gid (set as the launcher sets
/// them), so that the kernel answers for that user.
std::vector<conf::KeyProblem> check_as(const conf::App& app, const Identity& id, const std::string& as) {
  const std::string key = "app." + app.name + (app.user.empty() ? ".group" : ".user");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {{key, std::string("cannot check as its user: pipe: ") + std::strerror(errno), ""}};
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(fds[0]), ::close(fds[1]);
    return {{key, std::string("cannot check as its user: fork: ") + std::strerror(err), ""}};
  }
  if (pid == 0) {
    // The caller is single-threaded (see check.h), so the child may allocate.
    ::close(fds[0]);
    if (id.gid != static_cast<gid_t>(-1) && (::setgroups(1, &id.gid) != 0 || ::setgid(id.gid) != 0)) ::_exit(2);
    if (id.uid != static_cast<uid_t>(-1) && ::setuid(id.uid) != 0) ::_exit(2);
    std::string out = encode(AppChecker(app, " by " + as).run());
    for (size_t done = 0; done < out.size();) {
      ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(3);
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string bytes;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return {{key, "cannot check as " + as + ": the checking process failed to take that identity", ""}};
  return decode(bytes);
}

}  // namespace

std::vector<conf::KeyProblem> check_host(const conf::Config& c) {
  std::vector<conf::KeyProblem> out;
  const bool root = ::geteuid() == 0;
  for (auto& app : c.apps) {
    std::vector<conf::KeyProblem> problems;
    const std::string key = "app." + app.name + ".";
    // Not root: the launcher keeps our identity and ignores user/group (it logs that).
    if (root && (!app.user.empty() || !app.group.empty())) {
      bool known = true;
      if (!app.user.empty() && !is_number(app.user) && !::getpwnam(app.user.c_str())) {
        out.push_back({key + "user", "unknown user '" + app.user + "'", ""});
        known = false;
      }
      if (!app.group.empty() && !is_number(app.group) && !::getgrnam(app.group.c_str())) {
        out.push_back({key + "group", "unknown group '" + app.group + "'", ""});
        known = false;
      }
      auto id = known ? resolve_identity(app.user, app.group) : Result<Identity>(Identity{});
      if (!known || !id) continue;
      problems = check_as(app, *id, app.user.empty() ? "group '" + app.group + "'" : "user '" + app.user + "'");
    } else {
      problems = AppChecker(app, "").run();
    }
    for (auto& p : problems) out.push_back(std::move(p));
  }
  return out;
}

tl::expected<conf::Config, conf::Diagnostics> load_config(const std::string& path, std::string* text) {
  if (!text) return conf::load_file(path, check_host);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    conf::Diagnostics diags;
    diags.add(conf::Diagnostic{path, 0, 0, "", std::string("cannot read the config file: ") + std::strerror(err), ""});
    return tl::unexpected(std::move(diags));
  }
  std::ostringstream os;
  os << in.rdbuf();
  *text = os.str();
  return conf::load_string(*text, path, check_host);
}

int check_config(const std::string& path) {
  auto cfg = load_config(path);
  if (!cfg) {
    for (auto& d : cfg.error().items) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    if (cfg.error().items.empty()) std::fprintf(stderr, "%s: invalid configuration\n", path.c_str());
    return 1;
  }
  std::printf("%s: ok\n", path.c_str());
  return 0;
}

}  // namespace corral::supervisor
