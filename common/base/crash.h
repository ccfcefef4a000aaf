#pragma once
// Fatal-signal reporting: a process that dies of SIGSEGV, SIGBUS, SIGILL, SIGFPE or SIGABRT
// first writes one log line — the signal, the faulting address and the last operation it
// recorded — then dies of the same signal (core dump and exit status as without the
// handler, so a service manager sees the crash and restarts the service).
//
//   2026-12-04T21:40:01.123Z error corral-supervisor[812] [crash] fatal signal 11 (SIGSEGV)
//   at address 0x18, last operation: reload: app b: replace
#include <string_view>

namespace corral::crash {

/// Installs the handlers (on an alternate signal stack, so a stack overflow is reported
/// too). Call once, early in main, before threads start.
void install();

/// Records what the process is doing now, for the crash line (truncated to 200 bytes).
/// Cheap (a copy into a fixed buffer); meant for the supervisor's single loop thread.
/// Other threads may call it, but then the line may name another thread's operation.
void set_operation(std::string_view op);

/// Sets the operation for a scope and restores "idle" (or the enclosing one) after.
class Operation {
 public:
  explicit Operation(std::string_view op);
  ~Operation();
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

 private:
  char saved_[208];
};

/// Formats the crash line into `out` (at most `cap` bytes, newline included, no
/// terminator), using only async-signal-safe code: "at address 0x…" for a fault, "sent by
/// pid N" when `sender` >= 0 (kill(2)). Returns the length. Exposed for tests.
size_t format_line(char* out, size_t cap, long long unix_ms, int sig, const void* addr, long sender,
                   std::string_view program, long pid, std::string_view operation);

}  // namespace corral::crash
