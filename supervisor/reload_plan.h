#pragma once
// A reload in two steps: first the whole difference between the running config and the new
// one is computed (this file: pure, no state touched), then the Arbiter applies it. Nothing
// is applied on half-moved state, and `corralctl plan` can show the same difference before
// a reload happens.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "conf/config.h"

namespace corral::supervisor {

/// What a reload does to one app.
struct AppDiff {
  enum class Action {
    Keep,     ///< identical
    Update,   ///< running workers stay: settings the supervisor or proxy apply (counts, timeouts, queue)
    Replace,  ///< a new generation of workers replaces the running ones (make before break)
    Add,      ///< new app: workers start
    Remove,   ///< gone from the config: workers drain and stop
  };
  /// A running worker of the app (filled by the Arbiter for `corralctl plan`, never by
  /// plan_reload(), which sees no processes).
  struct Worker {
    int id = 0;
    int pid = 0;
    bool operator==(const Worker&) const = default;
  };
  std::string name;
  Action action = Action::Keep;
  std::vector<std::string> reasons;  ///< "env changed (SHOP_ENV)", "workers 2 -> 3", ...
  std::vector<std::string> env_keys;  ///< the env variables that differ (names only: values may be secrets)
  int workers_before = 0;  ///< workers running now (0 for an added app)
  int workers_after = 0;   ///< workers once the reload settled (0 for a removed app)
  std::vector<Worker> running;  ///< Replace, Remove: the workers that go (see Worker)

  /// Running workers the reload stops: all of them for Replace (after their replacements
  /// are ready) and Remove, the surplus for an Update that scales down.
  int stopped() const;
  /// Workers the reload starts: all of the new generation (Replace), all (Add), the
  /// missing ones for an Update that scales up.
  int started() const;

  bool operator==(const AppDiff&) const = default;
};

/// What a reload does to one listener (matched by its configured address).
struct ListenerDiff {
  enum class Action { Keep, Update, Add, Remove };
  std::string address;
  Action action = Action::Keep;
  std::vector<std::string> reasons;  ///< Update: "tls certificates changed", ...

  bool operator==(const ListenerDiff&) const = default;
};

/// The whole difference between two validated configs.
struct ReloadPlan {
  /// What the plan amounts to, for `corralctl plan`'s exit code.
  enum class Outcome {
    Nothing,  ///< a reload changes nothing
    Reload,   ///< a reload applies every change
    Restart,  ///< some changes apply only when corral restarts (on_restart; a reload applies the rest)
    Refused,  ///< a reload to this config is refused (refused); nothing would change
  };
  std::vector<AppDiff> apps;            ///< by name: every app of either config
  std::vector<ListenerDiff> listeners;  ///< new config's order, then the removed ones
  std::vector<std::string> routes;      ///< "route 2 (path /g): app a -> b", "route 3 added: ..."
  std::vector<std::string> proxy;       ///< proxy settings changed: "proxy.max_body_size"
  std::vector<std::string> supervisor;  ///< supervisor settings changed, applied now ("supervisor.log_level")
  std::vector<std::string> on_restart;  ///< changes a reload leaves for a restart, each saying which restart applies it
  std::string refused;                  ///< non-empty: the config cannot be applied by a reload (why)

  /// Nothing at all to do.
  bool empty() const;
  /// Refused beats Restart beats Reload beats Nothing.
  Outcome outcome() const;
  /// The app diff of `name`, or nullptr.
  const AppDiff* app(const std::string& name) const;
  /// One line per change, for the log and the control API ("app b: new generation (env changed)").
  /// {"nothing changed"} when empty.
  std::vector<std::string> describe() const;
  /// {"outcome", "apps": [{"name", "action", "reasons", "env_keys", "workers_before",
  ///  "workers_after", "started", "stopped", "running": [{"id", "pid"}]}], "listeners": [{"address",
  ///  "action", "reasons"}], "routes", "proxy", "supervisor", "on_restart", "refused"}.
  nlohmann::json to_json() const;
};

/// "keep", "update", "replace", "add", "remove".
const char* action_name(AppDiff::Action a);
/// "nothing", "reload", "restart", "refused".
const char* outcome_name(ReloadPlan::Outcome o);
const char* action_name(ListenerDiff::Action a);

/// Why the workers of `a` cannot run `b` as they are: the process-level fields that differ
/// ("command changed", "env changed (SHOP_ENV)", ...). Empty = the running workers can stay. Pure.
std::vector<std::string> process_changes(const conf::App& a, const conf::App& b);

/// The names of the env variables that differ between `a` and `b` (added, removed or another
/// value), sorted. Pure.
std::vector<std::string> env_keys_changed(const conf::App& a, const conf::App& b);

/// Computes what reloading from `running` to `next` does. Pure; thread-safe.
ReloadPlan plan_reload(const conf::Config& running, const conf::Config& next);

}  // namespace corral::supervisor
