#pragma once
// Runs a program to completion with posix_spawn, capturing stdout and stderr, with a
// deadline (SIGKILL when passed). Used for curl and corralctl.
//
// Thread-safe: several threads may run processes at once (pipes are CLOEXEC).
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

/// Path of a built corral binary (CORRAL_BIN_DIR/name).
std::string bin_path(const std::string& name);

}  // namespace corral::itest
