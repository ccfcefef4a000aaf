#pragma once
// Loading a config the way the supervisor needs it: the file must be valid (conf/loader.h)
// and the machine must be able to run it — every program a worker would exec and every
// folder it would enter exists and is usable by the worker's user. A config that fails
// either check starts nothing, and a reload to it is rejected.
// `corral-supervisor --check -c FILE` and `corralctl check FILE` print the same diagnostics.
// Not thread-safe only in the sense of fork(): call from a single-threaded process (the
// supervisor, corralctl) or accept that checks as another user fork.
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "conf/config.h"
#include "conf/diagnostics.h"
#include "conf/loader.h"

namespace corral::supervisor {

/// conf::load_file plus check_host(): what the supervisor calls to start, to reload (HUP,
/// corralctl reload) and for --check. Diagnostics name file, line and key for both kinds
/// of problem ("corral.toml:9:1: app.shop.command: /opt/shop/server does not exist").
/// `text` (when given) receives the file's text as it was read: what an upgrade in place
/// hands to the next image, which never re-reads the file.
[[nodiscard]] tl::expected<conf::Config, conf::Diagnostics> load_config(const std::string& path,
                                                                      std::string* text = nullptr);

/// What a worker of each app would fail on at exec time, checked now:
///   - command[0] is an executable regular file; without a '/', it is looked up in the PATH
///     the worker gets (the app's env PATH, else workers::kChildPath);
///   - cwd, and root (cgi, fastcgi), are folders the worker can enter;
///   - user and group exist (when running as root; otherwise workers keep our identity).
/// When running as root and the app has a user or group, the checks run in a child process
/// that has taken the worker's uid/gid (as the launcher sets them), so access() answers for
/// that user, ACLs and noexec mounts included. Returns nothing when all is well.
std::vector<conf::KeyProblem> check_host(const conf::Config& c);

/// Prints every diagnostic on its own line to stderr and returns 1, or prints "FILE: ok"
/// to stdout and returns 0.
int check_config(const std::string& path);

}  // namespace corral::supervisor
