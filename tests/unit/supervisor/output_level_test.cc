#include "supervisor/output_level.h"

#include <optional>
#include <string>

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

using log::Level;

struct Case {
  const char* line;
  std::optional<Level> level;
};

TEST(AppLineLevel, RecognisesTheUsualShapes) {
  const Case cases[] = {
      // Python logging's default format (basicConfig): LEVEL:logger:message.
      {"ERROR:root:database is gone", Level::Error},
      {"WARNING:app.db:slow query", Level::Warn},
      {"INFO:werkzeug:started", Level::Info},
      {"DEBUG:urllib3:connection", Level::Debug},
      {"CRITICAL:root:out of disk", Level::Error},
      // gunicorn's access/error log shape.
      {"[2024-01-01 10:00:00 +0000] [123] [ERROR] Exception in worker process", Level::Error},
      {"[2024-01-01 10:00:00 +0000] [123] [INFO] Booting worker with pid: 123", Level::Info},
      {"[2024-01-01 10:00:00 +0000] [123] [WARNING] Worker graceful timeout", Level::Warn},
      {"[2024-01-01 10:00:00 +0000] [123] [CRITICAL] WORKER TIMEOUT", Level::Error},
      {"[2024-01-01 10:00:00 +0000] [123] [DEBUG] GET /", Level::Debug},
      // Brackets, any case; Apache's module:level.
      {"[error] something broke", Level::Error},
      {"[warn] careful", Level::Warn},
      {"[Mon Jan 01 10:00:00.123456 2024] [core:error] [pid 12] AH00037: Symbolic link not allowed", Level::Error},
      {"[Mon Jan 01 10:00:00.123456 2024] [mpm_event:notice] [pid 12] resuming normal operations", Level::Info},
      // logfmt and JSON keys.
      {"time=2024-01-01T10:00:00Z level=error msg=\"db down\"", Level::Error},
      {"level=warn msg=slow", Level::Warn},
      {"ts=1 lvl=debug msg=x", Level::Debug},
      {"t=1 severity=ERROR m=x", Level::Error},
      {"time=1 level=\"info\" msg=ok", Level::Info},
      {"{\"time\":\"2024\",\"level\":\"error\",\"msg\":\"x\"}", Level::Error},
      {"{\"severity\": \"WARNING\", \"message\": \"x\"}", Level::Warn},
      {"{\"levelname\":\"CRITICAL\"}", Level::Error},
      // A leading token.
      {"ERROR something failed", Level::Error},
      {"ERROR: something failed", Level::Error},
      {"error: cannot open file", Level::Error},
      {"Error: cannot open file", Level::Error},
      {"WARNING something", Level::Warn},
      {"WARN something", Level::Warn},
      {"Warning: deprecated option", Level::Warn},
      {"INFO started", Level::Info},
      {"DEBUG x=1", Level::Debug},
      {"CRITICAL disk full", Level::Error},
      {"FATAL cannot continue", Level::Error},
      {"fatal: not a git repository", Level::Error},
      {"panic: runtime error: index out of range", Level::Error},
      {"  ERROR indented", Level::Error},
      {"ERROR", Level::Error},
      // After a timestamp.
      {"2024-01-01 10:00:00,123 WARNING app: slow", Level::Warn},
      {"2024-01-01T10:00:00.123Z ERROR boom", Level::Error},
      {"2024/01/01 10:00:00 [error] 12#0: *1 connect() failed", Level::Error},
      // PHP.
      {"PHP Fatal error:  Uncaught Exception: x in /app/index.php:3", Level::Error},
      {"PHP Parse error:  syntax error, unexpected '}' in /app/a.php on line 2", Level::Error},
      {"PHP Warning:  Undefined variable $x in /app/a.php on line 4", Level::Warn},
      {"PHP Notice:  Undefined index: a in /app/a.php on line 5", Level::Info},
      {"PHP Deprecated:  Function x() is deprecated", Level::Info},
      {"[01-Jan-2024 10:00:00 UTC] PHP Fatal error:  Allowed memory size exhausted", Level::Error},
      // Plain lines.
      {"hello world", std::nullopt},
      {"", std::nullopt},
      {"listening on /tmp/x.sock", std::nullopt},
      {"Errors are counted in the summary", std::nullopt},
      {"Debug mode enabled", std::nullopt},
      {"Information wants to be free", std::nullopt},
      {"error_count=0", std::nullopt},
      {"loglevel=error is the default", std::nullopt},
      {"level=verbose", std::nullopt},
      {"the level=error comes later in prose? no: a key anywhere counts", Level::Error},
      {"[pid 12] started", std::nullopt},
      {"err: something", Level::Error},
      {"err something", std::nullopt},
      {"PHP Stack trace:", std::nullopt},
      {"PHP   1. {main}() /app/index.php:0", std::nullopt},
      {" * Debug mode: off", std::nullopt},
      {"Traceback (most recent call last):", std::nullopt},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(app_line_level(c.line), c.level) << c.line;
  }
}

TEST(ClassifyOutputLine, CorralWorkerLinesKeepTheirLevelAndLoseTheirPrefix) {
  const std::string tag = "app=shop worker=2";
  auto out = classify_output_line(
      "2026-11-25T17:18:01.123Z error corral-worker[77] [app=shop worker=2] cannot load the CGI app: x", tag, Level::Info);
  EXPECT_EQ(out.level, Level::Error);
  EXPECT_EQ(out.text, "cannot load the CGI app: x");
  // A tag with less than the supervisor's (the CGI runner's "app=shop") goes too.
  out = classify_output_line("2026-11-25T17:18:01.123Z warn corral-worker[77] [app=shop] /x: no such script; answered 404",
                             tag, Level::Info);
  EXPECT_EQ(out.level, Level::Warn);
  EXPECT_EQ(out.text, "/x: no such script; answered 404");
  out = classify_output_line("2026-11-25T17:18:01.123Z debug corral-worker[77] [app=shop worker=2] detail", tag, Level::Info);
  EXPECT_EQ(out.level, Level::Debug);
  EXPECT_EQ(out.text, "detail");
  // A tag that tells more stays.
  out = classify_output_line("2026-11-25T17:18:01.123Z info corral-worker[77] [worker] bad option", tag, Level::Info);
  EXPECT_EQ(out.level, Level::Info);
  EXPECT_EQ(out.text, "[worker] bad option");
  // Without a tag.
  out = classify_output_line("2026-11-25T17:18:01.123Z error corral-worker[77] plain", tag, Level::Info);
  EXPECT_EQ(out.level, Level::Error);
  EXPECT_EQ(out.text, "plain");
}

TEST(ClassifyOutputLine, AppLinesKeepTheirTextAtTheLevelTheyName) {
  auto out = classify_output_line("ERROR:root:boom", "app=a worker=0", Level::Info);
  EXPECT_EQ(out.level, Level::Error);
  EXPECT_EQ(out.text, "ERROR:root:boom");
  out = classify_output_line("just talking", "app=a worker=0", Level::Info);
  EXPECT_EQ(out.level, Level::Info);
  EXPECT_EQ(out.text, "just talking");
  out = classify_output_line("just talking", "app=a worker=0", Level::Warn);
  EXPECT_EQ(out.level, Level::Warn);
}

}  // namespace
}  // namespace corral::supervisor
