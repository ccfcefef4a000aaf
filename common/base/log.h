#pragma once
// Line-oriented logging to stderr (or a file after log::open_file). Each line is one
// write(2), so lines from several threads or processes sharing the fd never interleave.
//
//   CORRAL_LOG(Warn, "app=shop slot=3") << "exited with " << code;
//   → 2026-11-25T17:18:01.123Z warn corral-proxy[812] [app=shop slot=3] exited with 1
//
// Thread-safe.
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
