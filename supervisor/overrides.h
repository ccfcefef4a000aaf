#pragma once
// App settings changed at run time through the control API — `corralctl scale` and TTIN/TTOU
// (workers), `corralctl advise --apply` / POST /apps/NAME/tune (workers, concurrency,
// worker_class) — rather than in the config file.
//
// The rule across reloads, key by key: a value set at run time stays in effect until the
// file changes that same key of that app; then the file's new value wins (and a line is
// logged). A key set back to what the file says is forgotten. An app removed from the file,
// or whose kind changed, loses its runtime values. A restart of corral forgets them all:
// the file is the only lasting source (`corralctl advise --apply` prints the lines for it).
//
// Pure data, no I/O; used by the Arbiter on its loop.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.h"
#include "conf/config.h"

namespace corral::supervisor {

/// A request to change some of an app's capacity settings (POST /apps/NAME/tune).
struct AppTuning {
  std::optional<int> workers;
  std::optional<int> concurrency;
  std::optional<std::string> worker_class;
};

/// Reads {"workers": N, "concurrency": N, "worker_class": "sync"|"gthread"|"gevent"} (each
/// optional, at least one). Fails with a message fit for a 400 answer.
[[nodiscard]] Result<AppTuning> parse_tuning(const nlohmann::json& body);

/// `running` with the tuning applied, checked as the loader checks the file: workers
/// 1..4096, concurrency within the schema's limits, worker_class only for wsgi, and
/// "sync" only with concurrency 1. Fails with a message fit for a 400 answer. Pure.
[[nodiscard]] Result<conf::App> tuned_app(const conf::App& running, const AppTuning& t);

class RuntimeOverrides {
 public:
  /// The app goes from `running` (as it runs now: the file plus earlier runtime values) to
  /// `changed`: remembers every key of workers, concurrency and worker_class that differs,
  /// with the file's value it replaces.
  void record(const conf::App& running, const conf::App& changed);
  /// Applies the runtime values to a config just read from the file, by the rule above.
  /// Returns one line per value the file overrode or that was dropped, for the log.
  std::vector<std::string> apply_to(conf::Config& from_file);
  /// {"workers": 4, "concurrency": 16, "worker_class": "gthread"}: the keys of `app` that
  /// differ from the file now; an empty object when none.
  nlohmann::json describe(const std::string& app) const;
  /// Every kept value with the file's value it replaced, for a new supervisor image
  /// (upgrade in place), and back. restore() replaces what is kept; unreadable entries are
  /// skipped.
  nlohmann::json state() const;
  void restore(const nlohmann::json& j);

 private:
  struct Kept {
    std::optional<int> workers, concurrency;
    std::optional<std::string> worker_class;
    // What the file said when the runtime value replaced it.
    int file_workers = 0, file_concurrency = 0;
    std::string file_worker_class;
  };
  std::map<std::string, Kept> apps_;
};

}  // namespace corral::supervisor
