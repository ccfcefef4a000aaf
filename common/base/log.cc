#include "common/base/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <string>

namespace corral::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_fd{2};
std::string g_program = "corral";
}  // namespace

bool parse_level(std::string_view s, Level& out) {
  if (s == "debug") out = Level::Debug;
  else if (s == "info") out = Level::Info;
  else if (s == "warn" || s == "warning") out = Level::Warn;
  else if (s == "error") out = Level::Error;
  else return false;
  return true;
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}

void set_level(Level l) { g_level.store(static_cast<int>(l)); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }
void set_program(std::string name) { g_program = std::move(name); }
void set_fd(int fd) { g_fd.store(fd); }
int fd() { return g_fd.load(std::memory_order_relaxed); }
std::string_view program() { return g_program; }

void write_line(Level l, std::string_view tag, std::string_view msg) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[64];
  int n = std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        static_cast<int>(tv.tv_usec / 1000));
  std::string line;
  line.reserve(96 + tag.size() + msg.size());
  line.append(ts, n);
  line.append(level_name(l));
  line.push_back(' ');
  line.append(g_program);
  line.push_back('[');
  line.append(std::to_string(getpid()));
  line.append("] ");
  if (!tag.empty()) {
    line.push_back('[');
    line.append(tag);
    line.append("] ");
  }
  line.append(msg);
  line.push_back('\n');
  const char* p = line.data();
  size_t left = line.size();
  const int out = g_fd.load();
  while (left > 0) {
    ssize_t w = ::write(out, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
}

}  // namespace corral::log
