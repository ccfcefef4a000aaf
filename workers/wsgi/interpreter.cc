#include "workers/wsgi/interpreter.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/base/log.h"
#include "common/base/strings.h"

// Set by workers/CMakeLists.txt: the module's file name ("" when this build has none), the
// Python it is built for, and where the packages install it.
#ifndef CORRAL_WSGI_MODULE_FILE
#define CORRAL_WSGI_MODULE_FILE ""
#endif
#ifndef CORRAL_WSGI_PYTHON_VERSION
#define CORRAL_WSGI_PYTHON_VERSION "3.11"
#endif
#ifndef CORRAL_WSGI_MODULE_INSTALL_DIR
#define CORRAL_WSGI_MODULE_INSTALL_DIR "/usr/lib/corral"
#endif

namespace corral::worker::wsgi {
namespace {

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// "3.11" from "3.11", "3.11.2" or "3.11.2.final.0"; nullopt for anything else.
std::optional<std::string> major_minor(std::string_view v) {
  size_t dot = v.find('.');
  if (dot == std::string_view::npos || !all_digits(v.substr(0, dot))) return std::nullopt;
  size_t end = v.find('.', dot + 1);
  std::string_view minor = v.substr(dot + 1, end == std::string_view::npos ? std::string_view::npos : end - dot - 1);
  if (!all_digits(minor)) return std::nullopt;
  return std::string(v.substr(0, dot + 1 + minor.size()));
}

}  // namespace

const char* const kBootstrap =
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "try:\n"
    "    import _corral_wsgi\n"
    "except ImportError as e:\n"
    "    import os\n"
    "    os.environ['CORRAL_WSGI_FALLBACK'] = '%s cannot import %s: %s' % (sys.executable, sys.argv[1], e)\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "del sys.path[0]\n"
    "sys.exit(_corral_wsgi.main(sys.argv[3:]))\n";

std::string interpreter_path(const Options& opts) {
  return opts.virtualenv.empty() ? std::string("/usr/bin/python3") : opts.virtualenv + "/bin/python3";
}

std::optional<std::string> interpreter_version(const std::string& interpreter, const std::string& virtualenv) {
  char buf[PATH_MAX];
  if (::realpath(interpreter.c_str(), buf)) {
    std::string_view name(buf);
    name.remove_prefix(name.rfind('/') + 1);
    if (name.starts_with("python")) {
      name.remove_prefix(6);
      if (auto v = major_minor(name); v && *v == name) return v;
    }
  }
  if (virtualenv.empty()) return std::nullopt;
  std::ifstream cfg(virtualenv + "/pyvenv.cfg");
  std::string line;
  while (std::getline(cfg, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string_view key = trim_ows(std::string_view(line).substr(0, eq));
    if (key == "version" || key == "version_info") return major_minor(trim_ows(std::string_view(line).substr(eq + 1)));
  }
  return std::nullopt;
}

std::string find_host_module() {
  const std::string file = CORRAL_WSGI_MODULE_FILE;
  if (file.empty()) return {};
  std::string self = self_exe();
  for (std::string dir : {self.substr(0, self.rfind('/') + 1), std::string(CORRAL_WSGI_MODULE_INSTALL_DIR) + "/"}) {
    if (dir.size() > 1 && ::access((dir + file).c_str(), R_OK) == 0) return dir + file;
  }
  return {};
}

void exec_interpreter(const Options& opts, const std::string& tag, const std::vector<std::string>& args) {
  const std::string interpreter = interpreter_path(opts);
  const char* forced = std::getenv("CORRAL_WSGI_EMBEDDED");
  std::string reason;
  log::Level level = log::Level::Warn;
  if (const char* back = std::getenv("CORRAL_WSGI_FALLBACK")) {  // the bootstrap could not import the module
    reason = back;
    ::unsetenv("CORRAL_WSGI_FALLBACK");
  } else if (forced && *forced && std::strcmp(forced, "0") != 0) {
    reason = "CORRAL_WSGI_EMBEDDED is set";
    level = log::Level::Info;
  } else if (!*CORRAL_WSGI_MODULE_FILE) {
    return;  // a build without the module (sanitizers): the embedded interpreter is the only one
  } else {
    std::string module = find_host_module();
    std::optional<std::string> version;
    if (module.empty()) {
      reason = std::string("the WSGI host module ") + CORRAL_WSGI_MODULE_FILE + " is neither next to corral-worker nor in " +
               CORRAL_WSGI_MODULE_INSTALL_DIR;
    } else if (::access(interpreter.c_str(), X_OK) != 0) {
      reason = interpreter + ": " + std::strerror(errno);
    } else if (!(version = interpreter_version(interpreter, opts.virtualenv))) {
      reason = "cannot tell which Python " + interpreter + " is (neither its name nor a pyvenv.cfg says)";
    } else if (*version != CORRAL_WSGI_PYTHON_VERSION) {
      reason = interpreter + " is Python " + *version + "; the WSGI host module is built for Python " +
               CORRAL_WSGI_PYTHON_VERSION;
    } else {
      // The comment line first, so that ps and /proc/PID/cmdline name the worker.
      std::string code = "# corral-worker: " + opts.app + "#" + std::to_string(opts.slot) + "\n" + kBootstrap;
      std::vector<std::string> argv = {interpreter, "-P", "-u", "-c", code, module.substr(0, module.rfind('/')),
                                       self_exe()};
      argv.insert(argv.end(), args.begin() + 1, args.end());
      std::vector<char*> ptrs;
      for (auto& a : argv) ptrs.push_back(a.data());
      ptrs.push_back(nullptr);
      ::execv(interpreter.c_str(), ptrs.data());
      reason = "cannot run " + interpreter + ": " + std::strerror(errno);
    }
  }
  if (opts.slot == 0 && level >= log::level())
    log::Line(level, tag) << "Python runs embedded in corral-worker (libpython " CORRAL_WSGI_PYTHON_VERSION
                              ", slower than the interpreter binary): "
                           << reason;
}

}  // namespace corral::worker::wsgi
