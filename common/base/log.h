#pragma once
// Line-oriented logging to stderr (or a file after log::open_file). Each line is one
// write(2), so lines from several threads or processes sharing the fd never interleave.
//
//   CORRAL_LOG(Warn, "app=shop slot=3") << "exited with " << code;
//   → 2026-11-25T17:18:01.123Z warn corral-proxy[812] [app=shop slot=3] exited with 1
//
// When the log fd is systemd's journal stream (JOURNAL_STREAM names it), every line starts
// with its syslog priority, "<4>2026-11-25T17:18:01.123Z warn ...", which journald strips
// and keeps as the entry's PRIORITY (sd-daemon(3)), so `journalctl -p err` finds errors.
//
// Thread-safe.
#include <sys/time.h>
#include <sys/types.h>

#include <sstream>
#include <string>
#include <string_view>

namespace corral::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

/// Parses "debug", "info", "warn"/"warning", "error". Returns false when unknown.
bool parse_level(std::string_view s, Level& out);
std::string_view level_name(Level l);

/// Process-wide settings; call before threads start.
void set_level(Level l);
Level level();
void set_program(std::string name);
/// Redirects log output to fd (default 2). The caller keeps ownership.
void set_fd(int fd);
/// The fd log lines go to now. Async-signal-safe.
int fd();
/// The program name set by set_program().
std::string_view program();

/// Writes one already-formatted line (a newline is appended). Thread-safe.
void write_line(Level l, std::string_view tag, std::string_view msg);

/// The syslog priority journald reads from a "<N>" line prefix: 3 (SD_ERR) for Error,
/// 4 (SD_WARNING) for Warn, 6 (SD_INFO) for Info, 7 (SD_DEBUG) for Debug.
int syslog_priority(Level l);

/// True when `journal_stream` (JOURNAL_STREAM's value, "<st_dev>:<st_ino>" in decimal, set by
/// systemd for a unit whose stdout/stderr goes to the journal) names the file `fd` is open on,
/// which is how systemd.exec(5) says to tell that output really reaches the journal (the
/// variable is inherited by processes whose stderr went elsewhere). False for a null or
/// malformed value or when fstat(2) fails.
bool is_journal_stream(int fd, const char* journal_stream);

/// Whether lines carry the "<N>" priority prefix: is_journal_stream(fd(), $JOURNAL_STREAM),
/// decided at the first line and again after set_fd(). Async-signal-safe once decided.
bool to_journal();

/// What goes into one line besides level, tag and message. Plain data.
struct LineContext {
  std::string_view program;
  pid_t pid = 0;
  timeval time{};
  bool journal = false;  ///< prefix the syslog priority ("<3>")
};

/// Appends one complete line, newline included, to `out`. Pure (format_line is what
/// write_line writes).
void format_line(Level l, std::string_view tag, std::string_view msg, const LineContext& ctx, std::string& out);

/// One line in corral's format, taken apart (views into the line).
struct ParsedLine {
  Level level = Level::Info;
  std::string_view program;
  pid_t pid = 0;
  std::string_view tag;      ///< without brackets; empty when the line has none
  std::string_view message;  ///< after the tag
};

/// Parses a line written by format_line (with or without the "<N>" prefix) of any corral
/// program. False when `line` is not in that format (an app's own output). Pure.
bool parse_line(std::string_view line, ParsedLine& out);

/// Builds one line and writes it on destruction.
class Line {
 public:
  Line(Level l, std::string_view tag) : level_(l), tag_(tag) {}
  ~Line() { write_line(level_, tag_, os_.str()); }
  template <typename T>
  Line& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  Level level_;
  std::string_view tag_;
  std::ostringstream os_;
};

}  // namespace corral::log

#define CORRAL_LOG(lvl, tag)                                          \
  if (::corral::log::Level::lvl < ::corral::log::level()) {           \
  } else                                                              \
    ::corral::log::Line(::corral::log::Level::lvl, (tag))

/// Impossible-after-init conditions: log and abort, in every build type.
#define CORRAL_CHECK(cond, msg)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      ::corral::log::write_line(::corral::log::Level::Error, "check",                   \
                                std::string(__FILE__ ":") + std::to_string(__LINE__) +  \
                                    ": " #cond ": " + (msg));                           \
      ::abort();                                                                        \
    }                                                                                   \
  } while (0)
