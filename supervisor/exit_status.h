#pragma once
// How a child died, in words, for the one log line every death gets. Pure; thread-safe.
#include <chrono>
#include <string>

namespace corral::supervisor {

/// "exit code 3", "killed by signal 11 (SIGSEGV) (core dumped)", "killed by signal 9
/// (SIGKILL), likely OOM kill" (a SIGKILL we did not send: `we_sent_kill` false).
std::string describe_exit(int wait_status, bool we_sent_kill);

/// "0.4s", "12.0s", "3m05s".
std::string format_uptime(std::chrono::milliseconds uptime);

}  // namespace corral::supervisor
