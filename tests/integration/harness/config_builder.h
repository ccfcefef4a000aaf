#pragma once
// ConfigBuilder: renders a corral TOML config from a base plus per-test modifiers.
// Defaults: runtime_dir in the test's TempRuntime, log_level "info", graceful_timeout "5s",
// access_log "-", one listener on 127.0.0.1:0, and (when a test adds none) one route "/" to
// the first app; a config with no app gets the default app "demo". Every app defaults to the built corral-testapp with TESTAPP_LOG=1 and a
// CORRAL_ITEST_RUN marker in its env (the audits use it to find leftover workers).
//
// Values are written as raw TOML: pass `quote("5s")` for strings, "3" for integers.
//
// Not thread-safe; owned by one test.
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace corral::itest {

/// A TOML basic string literal for `s` (quotes and escapes).
std::string quote(const std::string& s);

struct AppSpec {
  std::string name;
  std::string kind = "http";
  std::vector<std::string> command;  ///< argv; "{socket}" is substituted by the supervisor
  /// key → raw TOML value (workers, concurrency, timeout, queue_size, queue_timeout, cwd, ...).
  std::vector<std::pair<std::string, std::string>> settings;
  std::map<std::string, std::string> env;

  /// Sets (or replaces) one key with a raw TOML value.
  AppSpec& set(const std::string& key, const std::string& raw_value);
  AppSpec& workers(int n) { return set("workers", std::to_string(n)); }
  AppSpec& concurrency(int n) { return set("concurrency", std::to_string(n)); }
  AppSpec& timeout(const std::string& d) { return set("timeout", quote(d)); }
  AppSpec& queue_size(int n) { return set("queue_size", std::to_string(n)); }
  AppSpec& queue_timeout(const std::string& d) { return set("queue_timeout", quote(d)); }
  /// The app binds the slot's socket itself: command = testapp --unix {socket}.
  AppSpec& bind_itself();
};

class ConfigBuilder {
 public:
  /// `run_dir` is the TempRuntime path: runtime_dir is run_dir + "/r".
  explicit ConfigBuilder(std::string run_dir);

  /// Sets a key of [supervisor] / [proxy] with a raw TOML value.
  ConfigBuilder& supervisor(const std::string& key, const std::string& raw_value);
  ConfigBuilder& proxy(const std::string& key, const std::string& raw_value);
  /// Replaces the listener list with `addresses`.
  ConfigBuilder& listeners(std::vector<std::string> addresses);
  /// Adds a [[route]] (first added, first matched). Empty app/host/path are omitted: a static
  /// route is route("", "/static").route_set("static", quote("site")).
  ConfigBuilder& route(const std::string& app, const std::string& path = "/", const std::string& host = "");
  /// Sets (or replaces) one key of the last route added, with a raw TOML value.
  ConfigBuilder& route_set(const std::string& key, const std::string& raw_value);
  /// Sets (or replaces) one key of route `index` (0 = the first added); ignored when there is
  /// no such route.
  ConfigBuilder& route_set(size_t index, const std::string& key, const std::string& raw_value);
  /// The app named `name`, created with the defaults on first use.
  AppSpec& app(const std::string& name = "demo");
  /// Appended verbatim at the end (for invalid-config tests).
  ConfigBuilder& raw(const std::string& text);

  std::string render() const;
  /// The marker put into every app's env.
  const std::string& marker() const { return run_dir_; }

 private:
  struct Route {
    std::string app, path, host;
    std::vector<std::pair<std::string, std::string>> settings;
  };
  static void set_kv(std::vector<std::pair<std::string, std::string>>& kvs, const std::string& k,
                     const std::string& v);

  std::string run_dir_;
  std::vector<std::pair<std::string, std::string>> supervisor_;
  std::vector<std::pair<std::string, std::string>> proxy_;
  std::vector<std::string> listeners_{"127.0.0.1:0"};
  std::vector<Route> routes_;
  std::vector<AppSpec> apps_;
  std::string raw_;
};

}  // namespace corral::itest
