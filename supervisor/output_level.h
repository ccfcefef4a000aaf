#pragma once
// The level a worker's output line is logged at. corral-worker writes corral's own log
// format, so its lines keep their level and lose the prefix the supervisor writes again; an
// app's line is logged at the level it names in one of the usual ways, and plain lines at a
// fixed level. Pure functions; thread-safe.
#include <optional>
#include <string_view>

#include "common/base/log.h"

namespace corral::supervisor {

/// The level an app's line names, or nullopt for a plain line. Recognised (case as shown):
///   a leading token: "ERROR ...", "WARNING: ...", "ERROR:root:msg" (Python logging's
///     default), "error: ...", "fatal: ..." (any case and any name below when followed by
///     ':'; otherwise upper case and DEBUG/TRACE/INFO/NOTICE/WARN/WARNING/ERROR/CRITICAL/
///     FATAL/PANIC only);
///   a bracketed field among the first few: "[2024-01-01 10:00:00 +0000] [123] [ERROR] msg"
///     (gunicorn), "[warn] ...", "[core:error] ..." (Apache's module:level);
///   after a timestamp: "2024-01-01 10:00:00,123 WARNING msg";
///   PHP: "PHP Fatal error: ...", "PHP Parse error: ..." (error), "PHP Warning: ..." (warn),
///     "PHP Notice: ...", "PHP Deprecated: ..." (info), also after a "[date] " prefix;
///   a key anywhere: level=error, lvl=warn, severity=ERROR (logfmt), "level":"error" (JSON).
/// Names: debug/trace → Debug; info/notice → Info; warn/warning → Warn;
/// error/err/critical/crit/fatal/alert/emerg/panic/severe → Error.
std::optional<log::Level> app_line_level(std::string_view line);

/// How one line is logged.
struct OutputLine {
  log::Level level = log::Level::Info;
  std::string_view text;  ///< a view into the line
};

/// A line read from a worker's stdout or stderr. corral's own format (log::parse_line, what
/// corral-worker writes): its level, and the message without the timestamp, level and
/// program[pid]; its "[tag] " too when every word of it is in `tag` (the supervisor's tag for
/// this worker, "app=shop worker=2", which the log line gets anyway). Otherwise the
/// whole line at app_line_level(), else at `plain`.
OutputLine classify_output_line(std::string_view line, std::string_view tag, log::Level plain);

}  // namespace corral::supervisor
