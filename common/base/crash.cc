#include "common/base/crash.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include "common/base/log.h"

namespace corral::crash {
namespace {
constexpr size_t kOpCap = 200;
char g_operation[kOpCap + 8] = "start-up";
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
  }
}

// A tiny append-only buffer: everything here must be async-signal-safe (no malloc, no stdio).
struct Out {
  char* p;
  size_t cap;
  size_t n = 0;
  void put(char c) {
    if (n < cap) p[n++] = c;
  }
  void put(std::string_view s) {
    for (char c : s) put(c);
  }
  void dec(unsigned long long v, unsigned width = 0) {
    char tmp[24];
    unsigned i = 0;
    do {
      tmp[i++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && i < sizeof tmp);
    while (i < width && i < sizeof tmp) tmp[i++] = '0';
    for (unsigned j = i; j > 0; --j) put(tmp[j - 1]);
  }
  void hex(uintptr_t v) {
    put("0x");
    char tmp[2 * sizeof v];
    unsigned i = 0;
    do {
      tmp[i++] = "0123456789abcdef"[v & 15];
      v >>= 4;
    } while (v != 0 && i < sizeof tmp);
    for (unsigned j = i; j > 0; --j) put(tmp[j - 1]);
  }
};

// Days since 1970-01-01 → civil date (H. Hinnant's algorithm): gmtime_r is not signal-safe.
void civil(long long days, long long& y, unsigned& m, unsigned& d) {
  days += 719468;
  const long long era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<long long>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

char g_program[64] = "corral";

void on_fatal(int sig, siginfo_t* info, void*) {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  const long long ms = static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  char line[512];
  // A signal sent by a process (kill(2)) has no faulting address: name the sender instead.
  const bool sent = info && info->si_code <= 0;
  // The journal's priority prefix, as log lines have it (decided in install()).
  size_t n = 0;
  if (log::to_journal()) {
    ::memcpy(line, "<3>", 3);
    n = 3;
  }
  n += format_line(line + n, sizeof line - n, ms, sig, sent ? nullptr : (info ? info->si_addr : nullptr),
                   sent ? static_cast<long>(info->si_pid) : -1, g_program, static_cast<long>(::getpid()),
                   g_operation);
  const int fd = log::fd();
  for (size_t off = 0; off < n;) {
    ssize_t w = ::write(fd, line + off, n - off);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  // Die of the same signal: default action, unblocked, raised again.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, sig);
  ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}
}  // namespace

size_t format_line(char* out, size_t cap, long long unix_ms, int sig, const void* addr, long sender,
                   std::string_view program, long pid, std::string_view operation) {
  Out o{out, cap};
  long long y;
  unsigned mo, d;
  const long long secs = unix_ms / 1000;
  civil(secs / 86400, y, mo, d);
  const long long sod = secs % 86400;
  o.dec(static_cast<unsigned long long>(y), 4);
  o.put('-');
  o.dec(mo, 2);
  o.put('-');
  o.dec(d, 2);
  o.put('T');
  o.dec(static_cast<unsigned long long>(sod / 3600), 2);
  o.put(':');
  o.dec(static_cast<unsigned long long>(sod / 60 % 60), 2);
  o.put(':');
  o.dec(static_cast<unsigned long long>(sod % 60), 2);
  o.put('.');
  o.dec(static_cast<unsigned long long>(unix_ms % 1000), 3);
  o.put("Z error ");
  o.put(program);
  o.put('[');
  o.dec(static_cast<unsigned long long>(pid));
  o.put("] [crash] fatal signal ");
  o.dec(static_cast<unsigned long long>(sig));
  o.put(" (");
  o.put(signal_name(sig));
  if (sender >= 0) {
    o.put(") sent by pid ");
    o.dec(static_cast<unsigned long long>(sender));
  } else {
    o.put(") at address ");
    o.hex(reinterpret_cast<uintptr_t>(addr));
  }
  o.put(", last operation: ");
  o.put(operation);
  if (o.n == cap) o.n = cap - 1;  // room for the newline
  o.put('\n');
  return o.n;
}

void set_operation(std::string_view op) {
  const size_t n = op.size() < kOpCap ? op.size() : kOpCap;
  // The terminator goes in first: a signal in the middle of the copy reads a mixed but
  // always terminated string.
  g_operation[n] = '\0';
  ::memcpy(g_operation, op.data(), n);
}

Operation::Operation(std::string_view op) {
  ::memcpy(saved_, g_operation, sizeof saved_ < sizeof g_operation ? sizeof saved_ : sizeof g_operation);
  saved_[sizeof saved_ - 1] = '\0';
  set_operation(op);
}

Operation::~Operation() { set_operation(saved_); }

void install() {
  std::string_view prog = log::program();
  const size_t n = prog.size() < sizeof g_program - 1 ? prog.size() : sizeof g_program - 1;
  ::memcpy(g_program, prog.data(), n);
  g_program[n] = '\0';
  (void)log::to_journal();  // decided now: the signal handler only reads it
  set_operation("idle (waiting for events)");
  static char stack[64 * 1024];
  stack_t ss{};
  ss.ss_sp = stack;
  ss.ss_size = sizeof stack;
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  ::sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) ::sigaction(sig, &sa, nullptr);
}

}  // namespace corral::crash
