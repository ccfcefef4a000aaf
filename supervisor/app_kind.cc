#include "supervisor/app_kind.h"

#include "workers/options.h"

namespace corral::supervisor {

bool app_self_binds(const conf::App& app) {
  if (app.kind == conf::AppKind::Cgi || app.kind == conf::AppKind::Wsgi) return false;
  workers::LaunchSpec trial;
  trial.argv = app.command;
  for (auto& kv : app.env) trial.env.push_back(kv);
  return workers::substitute_socket(trial, "");
}

workers::LaunchSpec worker_launch_spec(const conf::App& app, int slot, const std::string& socket_path, int listen_fd,
                                       bool self_binds) {
  workers::LaunchSpec spec;
  spec.argv = app.command;
  for (auto& kv : app.env) spec.env.push_back(kv);
  spec.cwd = app.cwd;
  if (app.kind == conf::AppKind::Cgi) {
    worker::Options o;
    o.app = app.name;
    o.slot = slot;
    o.concurrency = app.concurrency;
    o.timeout_ms = app.timeout.count();
    o.root = app.root;
    o.index = app.index;
    o.script_filename = app.script_filename;
    o.command = app.command;
    spec.argv = worker::to_args(o);
    spec.argv[0] = worker::worker_binary();
  } else if (app.kind == conf::AppKind::Wsgi) {
    worker::Options o;
    o.app = app.name;
    o.slot = slot;
    o.kind = "wsgi";
    o.concurrency = app.concurrency;
    o.timeout_ms = app.timeout.count();
    o.module = app.module;
    o.python_path = app.python_path;
    o.virtualenv = app.virtualenv;
    o.worker_class = app.worker_class.empty() ? "sync" : app.worker_class;
    spec.argv = worker::to_args(o);
    spec.argv[0] = worker::worker_binary();
  }
  if (self_binds) {
    workers::substitute_socket(spec, socket_path);
  } else if (app.kind == conf::AppKind::Fastcgi) {
    spec.fds = {{listen_fd, 0}};
  } else {
    spec.fds = {{listen_fd, 3}};
    spec.listen_fds = true;
  }
  return spec;
}

const char* app_kind_name(conf::AppKind k) {
  switch (k) {
    case conf::AppKind::Http: return "http";
    case conf::AppKind::Fastcgi: return "fastcgi";
    case conf::AppKind::Cgi: return "cgi";
    case conf::AppKind::Wsgi: return "wsgi";
  }
  return "?";
}

}  // namespace corral::supervisor
