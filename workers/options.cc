#include "workers/options.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>

#include "common/base/strings.h"

namespace corral::worker {

Result<Options> parse_options(const std::vector<std::string>& args) {
  Options o;
  bool have_root = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      o.command.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (i + 1 >= args.size()) return fail(Errc::InvalidInput, "argument " + a + " needs a value (or is unknown)");
    const std::string& v = args[++i];
    auto number = [&](long long min, long long max) -> std::optional<long long> {
      auto n = parse_decimal(v);
      if (!n || static_cast<long long>(*n) < min || static_cast<long long>(*n) > max) return std::nullopt;
      return static_cast<long long>(*n);
    };
    if (a == "--app") {
      o.app = v;
    } else if (a == "--slot") {
      auto n = number(0, 1 << 20);
      if (!n) return fail(Errc::InvalidInput, "--slot " + v + ": not a slot number");
      o.slot = static_cast<int>(*n);
    } else if (a == "--kind") {
      if (v != "cgi" && v != "wsgi") return fail(Errc::InvalidInput, "--kind " + v + ": unknown kind");
      o.kind = v;
    } else if (a == "--concurrency") {
      auto n = number(1, 100000);
      if (!n) return fail(Errc::InvalidInput, "--concurrency " + v + ": expected 1 to 100000");
      o.concurrency = static_cast<int>(*n);
    } else if (a == "--timeout-ms") {
      auto n = number(1, 1'000'000'000'000LL);
      if (!n) return fail(Errc::InvalidInput, "--timeout-ms " + v + ": expected a positive number");
      o.timeout_ms = *n;
    } else if (a == "--root") {
      o.root = v;
      have_root = true;
    } else if (a == "--index") {
      if (v.find('/') != std::string::npos || (!v.empty() && v.front() == '.'))
        return fail(Errc::InvalidInput, "--index " + v + ": expected a file name");
      o.index = v;
    } else if (a == "--mount") {
      o.mounts.push_back(v);
    } else if (a == "--script-filename") {
      o.script_filename = v;
    } else if (a == "--module") {
      o.module = v;
    } else if (a == "--python-path") {
      o.python_path.push_back(v);
    } else if (a == "--virtualenv") {
      o.virtualenv = v;
    } else if (a == "--worker-class") {
      if (v != "sync" && v != "gthread" && v != "gevent")
        return fail(Errc::InvalidInput, "--worker-class " + v + ": expected sync, gthread or gevent");
      o.worker_class = v;
    } else {
      return fail(Errc::InvalidInput, "unknown argument " + a);
    }
  }
  if (o.kind == "wsgi") {
    if (o.module.empty()) return fail(Errc::InvalidInput, "--kind wsgi needs --module MODULE:CALLABLE");
    if (have_root || !o.command.empty()) return fail(Errc::InvalidInput, "--kind wsgi takes no --root or program");
    return o;
  }
  if (have_root == !o.command.empty())
    return fail(Errc::InvalidInput, "give either --root DIR or -- PROGRAM ARGS..., not both or neither");
  return o;
}

std::string log_tag(const Options& o) { return "app=" + o.app + " worker=" + std::to_string(o.slot); }

void set_thread_name(const Options& o) {
  std::string name = o.app + "#" + std::to_string(o.slot);
  ::prctl(PR_SET_NAME, name.substr(0, 15).c_str());
}

std::string worker_binary() {
  if (const char* env = std::getenv("CORRAL_WORKER_BIN"); env && *env) return env;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "corral-worker";
  std::string self(buf, static_cast<size_t>(n));
  size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/corral-worker";
}

std::vector<std::string> to_args(const Options& o) {
  std::vector<std::string> a = {"corral-worker", "--app", o.app, "--slot", std::to_string(o.slot), "--kind", o.kind,
                                "--concurrency", std::to_string(o.concurrency), "--timeout-ms",
                                std::to_string(o.timeout_ms)};
  if (!o.root.empty()) a.insert(a.end(), {"--root", o.root});
  if (!o.root.empty() && !o.index.empty()) a.insert(a.end(), {"--index", o.index});
  for (auto& m : o.mounts) a.insert(a.end(), {"--mount", m});
  if (!o.script_filename.empty()) a.insert(a.end(), {"--script-filename", o.script_filename});
  if (!o.module.empty()) {
    a.insert(a.end(), {"--module", o.module, "--worker-class", o.worker_class});
    for (auto& p : o.python_path) a.insert(a.end(), {"--python-path", p});
    if (!o.virtualenv.empty()) a.insert(a.end(), {"--virtualenv", o.virtualenv});
  }
  if (!o.command.empty()) {
    a.push_back("--");
    a.insert(a.end(), o.command.begin(), o.command.end());
  }
  return a;
}

}  // namespace corral::worker
