#pragma once
// Runs a program to completion with posix_spawn, capturing stdout and stderr, with a
// deadline (SIGKILL when passed). Used for curl and corralctl.
//
// Thread-safe: several threads may run processes at once (pipes are CLOEXEC).
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace corral::itest {

struct ProcessResult {
  int exit_code = -1;     ///< -1 when killed by a signal, on timeout or when spawn failed
  bool timed_out = false;
  std::string out;
  std::string err;
};

/// Runs argv[0] (searched in PATH) with the current environment plus `extra_env`
/// ("NAME=value"), feeding `stdin_data`.
ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                          const std::string& stdin_data = "", const std::vector<std::string>& extra_env = {});

/// envp for posix_spawn: the current environment with `extra` ("NAME=value") overriding.
std::vector<std::string> make_env(const std::vector<std::string>& extra);

/// Starts argv[0] (searched in PATH) in the background, in its own process group, with
/// default signal dispositions and an empty mask, stdin from /dev/null and stdout + stderr
/// appended to `log_path`, the environment being the current one plus `extra_env`. The pid,
/// or -1 with `error` set.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_path,
                   const std::vector<std::string>& extra_env = {}, std::string* error = nullptr);

/// Path of a built corral binary (CORRAL_BIN_DIR/name).
std::string bin_path(const std::string& name);

}  // namespace corral::itest
