#include "common/base/crash.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "common/base/log.h"

namespace corral::crash {
namespace {

std::string line(long long ms, int sig, const void* addr, long sender, std::string_view op, size_t cap = 512) {
  char buf[512];
  size_t n = format_line(buf, cap, ms, sig, addr, sender, "corral-supervisor", 812, op);
  return std::string(buf, n);
}

TEST(Crash, FormatsOneLogLine) {
  // 2026-12-04T21:40:01.123Z
  EXPECT_EQ(line(1796420401123, SIGSEGV, reinterpret_cast<void*>(0x18), -1, "reload: app b: replace"),
            "2026-12-04T21:40:01.123Z error corral-supervisor[812] [crash] fatal signal 11 (SIGSEGV) at address 0x18, "
            "last operation: reload: app b: replace\n");
  EXPECT_EQ(line(0, SIGABRT, nullptr, 4242, "idle"),
            "1970-01-01T00:00:00.000Z error corral-supervisor[812] [crash] fatal signal 6 (SIGABRT) sent by pid 4242, "
            "last operation: idle\n");
  // A leap day and a short buffer: still one line ending in a newline.
  EXPECT_EQ(line(951782400000, SIGBUS, nullptr, -1, "x").substr(0, 24), "2000-02-29T00:00:00.000Z");
  std::string cut = line(0, SIGSEGV, nullptr, -1, std::string(300, 'o'), 40);
  EXPECT_EQ(cut.size(), 40u);
  EXPECT_EQ(cut.back(), '\n');
}

// A real fault in a child: the line reaches the log fd with the last operation, and the
// child still dies of the signal.
void* page_ = nullptr;

TEST(Crash, AFaultWritesTheLineAndDiesOfTheSignal) {
  // A fault no sanitizer intercepts first: a write to a page without access.
  page_ = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page_, MAP_FAILED);
  char where[32];
  std::snprintf(where, sizeof where, "at address %p,", page_);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    log::set_program("crash-test");
    log::set_fd(fds[1]);
    install();
    Operation op("writing to a PROT_NONE page on purpose");
    auto* page = static_cast<volatile char*>(page_);
    *page = 1;
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[1024];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_NE(out.find("error crash-test["), std::string::npos) << out;
  EXPECT_NE(out.find(std::string("[crash] fatal signal 11 (SIGSEGV) ") + where +
                     " last operation: writing to a PROT_NONE page on purpose\n"),
            std::string::npos)
      << out;
  ::munmap(page_, 4096);
}

}  // namespace
}  // namespace corral::crash
