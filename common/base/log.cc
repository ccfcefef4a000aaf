#include "common/base/log.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "common/base/strings.h"

namespace corral::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_fd{2};
std::atomic<int> g_journal{-1};  // -1: not decided yet (see to_journal)
std::string g_program = "corral";

bool digits(std::string_view s) {
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}

// "2026-11-25T17:18:01.123Z": the shape format_line writes.
bool is_timestamp(std::string_view t) {
  if (t.size() != 24) return false;
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.dddZ";
  for (size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != kShape[i]) return false;
  }
  return true;
}
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
void set_fd(int fd) {
  g_fd.store(fd);
  g_journal.store(-1);  // decided again for the new fd
}
int fd() { return g_fd.load(std::memory_order_relaxed); }
std::string_view program() { return g_program; }

int syslog_priority(Level l) {
  switch (l) {
    case Level::Debug: return 7;
    case Level::Info: return 6;
    case Level::Warn: return 4;
    case Level::Error: return 3;
  }
  return 6;
}

bool is_journal_stream(int fd, const char* journal_stream) {
  if (!journal_stream) return false;
  std::string_view v(journal_stream);
  const auto colon = v.find(':');
  if (colon == std::string_view::npos) return false;
  auto dev = parse_decimal(v.substr(0, colon));
  auto ino = parse_decimal(v.substr(colon + 1));
  if (!dev || !ino) return false;
  struct stat st;
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<uint64_t>(st.st_dev) == *dev && static_cast<uint64_t>(st.st_ino) == *ino;
}

bool to_journal() {
  int j = g_journal.load(std::memory_order_relaxed);
  if (j < 0) {
    // Racing first lines on several threads all reach the same answer.
    j = is_journal_stream(g_fd.load(), std::getenv("JOURNAL_STREAM")) ? 1 : 0;
    g_journal.store(j, std::memory_order_relaxed);
  }
  return j == 1;
}

void format_line(Level l, std::string_view tag, std::string_view msg, const LineContext& ctx, std::string& out) {
  struct tm tm;
  time_t secs = ctx.time.tv_sec;
  gmtime_r(&secs, &tm);
  char ts[64];
  int n = 0;
  if (ctx.journal) n = std::snprintf(ts, sizeof ts, "<%d>", syslog_priority(l));
  n += std::snprintf(ts + n, sizeof ts - static_cast<size_t>(n), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(ctx.time.tv_usec / 1000));
  out.reserve(out.size() + 96 + tag.size() + msg.size());
  out.append(ts, static_cast<size_t>(n));
  out.append(level_name(l));
  out.push_back(' ');
  out.append(ctx.program);
  out.push_back('[');
  out.append(std::to_string(ctx.pid));
  out.append("] ");
  if (!tag.empty()) {
    out.push_back('[');
    out.append(tag);
    out.append("] ");
  }
  out.append(msg);
  out.push_back('\n');
}

bool parse_line(std::string_view line, ParsedLine& out) {
  // Optional journal priority: "<N>".
  if (line.size() >= 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>') line.remove_prefix(3);
  if (line.size() < 25 || !is_timestamp(line.substr(0, 24)) || line[24] != ' ') return false;
  line.remove_prefix(25);
  const auto sp = line.find(' ');
  if (sp == std::string_view::npos || !parse_level(line.substr(0, sp), out.level)) return false;
  line.remove_prefix(sp + 1);
  // program[pid] and a space (always written, even before an empty message).
  const auto open = line.find('[');
  const auto close = line.find("] ");
  if (open == std::string_view::npos || open == 0 || close == std::string_view::npos || close < open) return false;
  const std::string_view program = line.substr(0, open);
  if (program.find(' ') != std::string_view::npos) return false;
  const std::string_view pid = line.substr(open + 1, close - open - 1);
  if (!digits(pid) || pid.size() > 9) return false;
  out.program = program;
  out.pid = static_cast<pid_t>(*parse_decimal(pid));
  line.remove_prefix(close + 2);
  out.tag = {};
  if (!line.empty() && line[0] == '[') {
    const auto end = line.find(']');
    if (end != std::string_view::npos && (end + 1 == line.size() || line[end + 1] == ' ')) {
      out.tag = line.substr(1, end - 1);
      line.remove_prefix(std::min(line.size(), end + 2));
    }
  }
  out.message = line;
  return true;
}

void write_line(Level l, std::string_view tag, std::string_view msg) {
  LineContext ctx;
  gettimeofday(&ctx.time, nullptr);
  ctx.program = g_program;
  ctx.pid = getpid();
  ctx.journal = to_journal();
  std::string line;
  format_line(l, tag, msg, ctx, line);
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
