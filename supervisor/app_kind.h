#pragma once
// How a worker of each app kind is started (DESIGN.md, "Socket hand-over"):
//   http    — the app binary; the slot socket as fd 3 with LISTEN_FDS=1, or "{socket}" bound by the app;
//   fastcgi — the app binary; the slot socket as fd 0 (the FastCGI convention, as spawn-fcgi
//             and mod_fcgid do), or "{socket}" bound by the app;
//   cgi     — corral-worker (the CGI program is its argument, or --root), the socket as fd 3.
//   wsgi    — corral-worker --kind wsgi --module ... (embedded CPython), the socket as fd 3.
// Pure functions; thread-safe.
#include <string>

#include "conf/config.h"
#include "workers/launcher.h"

namespace corral::supervisor {

/// True when the app binds the slot's socket itself ("{socket}" in command or env). Never for cgi or wsgi.
bool app_self_binds(const conf::App& app);

/// Fills argv, env, cwd and the fd map of slot `slot`'s worker. `listen_fd` is the slot's
/// listening socket (unused when `self_binds`).
workers::LaunchSpec worker_launch_spec(const conf::App& app, int slot, const std::string& socket_path, int listen_fd,
                                       bool self_binds);

/// "http", "fastcgi", "cgi", "wsgi".
const char* app_kind_name(conf::AppKind k);

}  // namespace corral::supervisor
