#pragma once
// The entry points of an upgrade in place that run before any Arbiter exists (main.cc
// calls them; the Arbiter's side is arbiter_upgrade.cc):
//   corral-supervisor --upgrade-check FD -c CONFIG   the dry run of a new binary
//   corral-supervisor -c CONFIG --upgrade-state FD   the new image taking over
#include <string>

namespace corral::supervisor {

/// The executable to re-execute on upgrade: argv[0] made absolute when it names a path
/// (what systemd's ExecStart or a shell ran; a package upgrade replaces that file), else
/// /proc/self/exe resolved now, at start, while it still names a file. Empty when unknown.
std::string own_binary(const char* argv0);

/// The dry run: reads the state in `fd` (format and version), loads its config text with
/// this binary's loader. Prints one line ("ok ..." to stdout, or the problems to stderr);
/// returns the exit code (0 = this binary can take the state over).
int upgrade_check(int fd);

/// The new image: reads the state in `fd` (then closed), makes the config from its text
/// and runtime overrides, and runs the Arbiter resumed from it. Returns the exit code.
int resume_supervisor(int fd, const std::string& binary);

}  // namespace corral::supervisor
