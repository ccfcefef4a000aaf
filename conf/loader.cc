// Walks the TOML document against the schema table (schema.h): every section, every key.
// All errors are collected (in file order), except that a syntax error stops at once.
#include "conf/loader.h"

// TOML_HEADER_ONLY=1 and TOML_EXCEPTIONS=0 come from conf/CMakeLists.txt.
#include "conf/toml.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/base/strings.h"
#include "conf/tls_files.h"
#include "conf/cores.h"
#include "conf/schema.h"
#include "conf/syntax_error.h"

namespace corral::conf {
namespace {

namespace fs = std::filesystem;

struct Position {
  int line = 0;
  int column = 0;
};

Position position_of(const toml::source_region& r) {
  return Position{static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

std::string describe_node(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string \"" + n.as_string()->get() + "\"";
    case toml::node_type::integer: return "an integer " + std::to_string(n.as_integer()->get());
    case toml::node_type::floating_point: {
      std::ostringstream os;
      os << n.as_floating_point()->get();
      return "a float " + os.str();
    }
    case toml::node_type::boolean: return n.as_boolean()->get() ? "a boolean true" : "a boolean false";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time: return "a date/time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string quote(const std::string& s) { return "\"" + s + "\""; }

/// TOML node → Value of the row's type, or the problem ("expected X, got Y").
tl::expected<Value, Problem> convert(const toml::node& n, ValueType type) {
  Value v;
  v.type = type;
  auto mismatch = [&] {
    return tl::unexpected(Problem{"expected " + std::string(describe_type(type)) + ", got " + describe_node(n), {}});
  };
  switch (type) {
    case ValueType::String:
      if (!n.is_string()) return mismatch();
      v.text = n.as_string()->get();
      return v;
    case ValueType::Integer:
      if (!n.is_integer()) return mismatch();
      v.integer = n.as_integer()->get();
      return v;
    case ValueType::IntegerOrAuto:
      if (n.is_integer()) {
        v.integer = n.as_integer()->get();
        return v;
      }
      if (n.is_string() && n.as_string()->get() == "auto") {
        v.is_auto = true;
        return v;
      }
      return mismatch();
    case ValueType::Duration: {
      const char* kHint = "write e.g. \"30s\", \"250ms\", \"2m\" or \"1h\"";
      if (n.is_integer()) {
        int64_t secs = n.as_integer()->get();
        if (secs < 0) return tl::unexpected(Problem{"a duration cannot be negative (" + std::to_string(secs) + ")", kHint});
        if (secs > 1'000'000'000) return tl::unexpected(Problem{"duration " + std::to_string(secs) + "s is too long", {}});
        v.duration = Millis(secs * 1000);
        return v;
      }
      if (!n.is_string()) return mismatch();
      auto d = parse_duration(n.as_string()->get());
      if (!d) return tl::unexpected(Problem{"invalid duration " + quote(n.as_string()->get()), kHint});
      v.duration = *d;
      return v;
    }
    case ValueType::Size: {
      const char* kHint = "write e.g. \"512KiB\", \"16MiB\", \"1GiB\" or a number of bytes";
      if (n.is_integer()) {
        int64_t bytes = n.as_integer()->get();
        if (bytes < 0) return tl::unexpected(Problem{"a size cannot be negative (" + std::to_string(bytes) + ")", kHint});
        v.size = static_cast<uint64_t>(bytes);
        return v;
      }
      if (!n.is_string()) return mismatch();
      auto s = parse_size(n.as_string()->get());
      if (!s) return tl::unexpected(Problem{"invalid size " + quote(n.as_string()->get()), kHint});
      v.size = *s;
      return v;
    }
    case ValueType::StringArray: {
      auto* arr = n.as_array();
      if (!arr) return mismatch();
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::node& el = *arr->get(i);
        if (!el.is_string())
          return tl::unexpected(Problem{"expected " + std::string(describe_type(type)) + ", got " +
                                            describe_node(el) + " at index " + std::to_string(i),
                                        {}});
        v.list.push_back(el.as_string()->get());
      }
      return v;
    }
    case ValueType::StringTable: {
      auto* tbl = n.as_table();
      if (!tbl) return mismatch();
      for (auto&& [k, el] : *tbl) {
        if (!el.is_string())
          return tl::unexpected(Problem{"expected " + std::string(describe_type(type)) + ", got " +
                                            describe_node(el) + " for '" + std::string(k.str()) + "'",
                                        {}});
        v.table.emplace_back(std::string(k.str()), el.as_string()->get());
      }
      return v;  // toml::table iterates in key order: already sorted by name
    }
    case ValueType::Boolean:
      if (!n.is_boolean()) return mismatch();
      v.boolean = n.as_boolean()->get();
      return v;
    case ValueType::Table: {
      if (!n.is_table()) return mismatch();
      std::optional<Problem> bad;
      auto flatten = [&](auto& self, const toml::table& t, const std::string& prefix) -> void {
        for (auto&& [k, el] : t) {
          std::string key = prefix + std::string(k.str());
          if (el.is_string()) v.table.emplace_back(key, el.as_string()->get());
          else if (el.is_integer()) v.table.emplace_back(key, std::to_string(el.as_integer()->get()));
          else if (el.is_boolean()) v.table.emplace_back(key, el.as_boolean()->get() ? "true" : "false");
          else if (el.is_array() && el.as_array()->is_array_of_tables()) {
            size_t i = 0;
            for (auto&& item : *el.as_array()) self(self, *item.as_table(), key + "[" + std::to_string(i++) + "].");
          } else if (!bad) {
            bad = Problem{"unexpected " + describe_node(el) + " for '" + key + "'", {}};
          }
        }
      };
      flatten(flatten, *n.as_table(), "");
      if (bad) return tl::unexpected(*bad);
      return v;
    }
  }
  return mismatch();
}

class Loader {
 public:
  Loader(std::string file, Diagnostics& diags) : file_(std::move(file)), diags_(diags) {
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(file_), ec);
    if (ec) abs = fs::path(file_);
    dir_ = abs.lexically_normal().parent_path();
  }

  Config load(const toml::table& root, const HostCheck& host_check) {
    Config c;
    c.file = file_;
    for (auto&& [k, node] : root) {
      std::string name(k.str());
      Position pos = position_of(k.source());
      if (name == "supervisor") {
        if (auto* t = expect_table(node, name, pos, "[supervisor]")) {
          Target target{.supervisor = &c.supervisor};
          walk(*t, Section::Supervisor, target, "supervisor", "[supervisor]", pos);
        }
      } else if (name == "proxy") {
        if (auto* t = expect_table(node, name, pos, "[proxy]")) {
          Target target{.proxy = &c.proxy};
          walk(*t, Section::Proxy, target, "proxy", "[proxy]", pos);
        }
      } else if (name == "listener") {
        load_array(node, Section::Listener, pos, [&](const toml::table& t, const std::string& path, Position p) {
          Listener l;
          Target target{.listener = &l};
          if (walk(t, Section::Listener, target, path, "[[listener]]", p)) c.listeners.push_back(std::move(l));
          else c.listeners.emplace_back();  // keep indexes aligned with the file
        });
      } else if (name == "route") {
        load_array(node, Section::Route, pos, [&](const toml::table& t, const std::string& path, Position p) {
          Route r;
          Target target{.route = &r};
          walk(t, Section::Route, target, path, "[[route]]", p);
          c.routes.push_back(std::move(r));
        });
      } else if (name == "app") {
        load_apps(node, pos, c);
      } else {
        std::vector<std::string_view> sections = {"supervisor", "proxy", "listener", "route", "app"};
        std::string hint;
        if (auto guess = did_you_mean(name, sections); !guess.empty()) hint = "did you mean '" + guess + "'?";
        if (node.is_table()) error("", pos, "unknown section [" + name + "]", hint);
        else if (node.is_array_of_tables()) error("", pos, "unknown section [[" + name + "]]", hint);
        else if (std::string tables = tables_with_key(name); !tables.empty())
          error("", pos, "unknown key '" + name + "' at the top level", "it belongs in " + tables);
        else error("", pos, "unknown key '" + name + "' at the top level", hint);
      }
    }
    cross_check(c);
    if (host_check) {
      for (auto& p : host_check(c)) error(p.key, position_or_table(p.key), p.message, p.hint);
    }
    return c;
  }

 private:
  void error(const std::string& key, Position pos, std::string message, std::string hint = {}) {
    diags_.add(Diagnostic{file_, pos.line, pos.column, key, std::move(message), std::move(hint)});
  }

  /// Reports an unknown key of `section`: where it belongs when another table has it, else
  /// "did you mean" a key of this table. Returns the suggested name (empty when none).
  std::string unknown_key(const std::string& name, Position pos, const std::string& path, const std::string& where,
                          Section section) {
    if (std::string tables = tables_with_key(name); !tables.empty()) {
      error(path, pos, "unknown key '" + name + "' " + where, "it belongs in " + tables);
      return {};
    }
    std::string guess = did_you_mean(name, key_names(section));
    error(path, pos, "unknown key '" + name + "' " + where, guess.empty() ? "" : "did you mean '" + guess + "'?");
    return guess;
  }

  /// The tables that have a key `name`, as written in a file: "[proxy]", "[supervisor] or
  /// [app.NAME]"; empty when none.
  static std::string tables_with_key(std::string_view name) {
    std::vector<std::string> tables;
    for (Section s : {Section::Supervisor, Section::Proxy, Section::Listener, Section::Route, Section::App}) {
      if (!find_key(s, name)) continue;
      std::string table(section_name(s));
      if (s == Section::Listener || s == Section::Route) tables.push_back("[[" + table + "]]");
      else if (s == Section::App) tables.push_back("[app.NAME]");
      else tables.push_back("[" + table + "]");
    }
    std::string out;
    for (size_t i = 0; i < tables.size(); ++i) out += (i == 0 ? "" : i + 1 == tables.size() ? " or " : ", ") + tables[i];
    return out;
  }

  const toml::table* expect_table(const toml::node& n, const std::string& path, Position pos, const std::string& display) {
    if (auto* t = n.as_table()) return t;
    error(path, pos, "expected a table " + display + ", got " + describe_node(n));
    return nullptr;
  }

  template <typename Fn>
  void load_array(const toml::node& n, Section section, Position pos, Fn&& each) {
    std::string name(section_name(section));
    auto* arr = n.as_array();
    if (!arr) {
      error(name, pos, "expected an array of tables [[" + name + "]], got " + describe_node(n),
            n.is_table() ? "write [[" + name + "]] with double brackets" : "");
      return;
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      std::string path = name + "[" + std::to_string(i) + "]";
      Position p = el.source().begin.line ? position_of(el.source()) : pos;
      if (auto* t = el.as_table()) {
        each(*t, path, p);
      } else {
        error(path, p, "expected a table [[" + name + "]], got " + describe_node(el));
      }
    }
  }

  void load_apps(const toml::node& n, Position pos, Config& c) {
    auto* apps = expect_table(n, "app", pos, "of apps [app.NAME]");
    if (!apps) return;
    for (auto&& [k, node] : *apps) {
      std::string name(k.str());
      std::string path = "app." + name;
      Position p = position_of(k.source());
      if (node.source().begin.line) p = position_of(node.source());
      auto* t = node.as_table();
      if (!t) {
        error(path, position_of(k.source()), "expected a table [app." + name + "], got " + describe_node(node),
              "apps are tables named [app.NAME]");
        continue;
      }
      if (!is_valid_app_name(name)) {
        error(path, p, "invalid app name '" + name + "'", "use only letters, digits, '_' and '-'");
        continue;
      }
      App a;
      a.name = name;
      Target target{.app = &a};
      walk(*t, Section::App, target, path, "[app." + name + "]", p);
      c.apps.push_back(std::move(a));  // toml::table iterates in key order: sorted by name
    }
  }

  /// Applies every key of one table; reports unknown, mistyped, impossible and missing keys.
  /// Returns true when the table had no error.
  bool walk(const toml::table& t, Section section, Target& target, const std::string& path,
            const std::string& display, Position table_pos) {
    size_t errors_before = diags_.items.size();
    positions_[path] = table_pos;
    std::set<std::string> seen;  // present keys, and keys a typo was already pointed at
    for (auto&& [k, node] : t) {
      std::string name(k.str());
      Position pos = position_of(k.source());
      const KeySpec* spec = find_key(section, name);
      if (!spec) {
        seen.insert(unknown_key(name, pos, path, "in " + display, section));
        continue;
      }
      seen.insert(std::string(spec->name));
      std::string key_path = path + "." + name;
      positions_[key_path] = pos;
      auto v = convert(node, spec->type);
      if (!v) {
        error(key_path, pos, v.error().message, v.error().hint);
        continue;
      }
      if (auto problem = spec->apply(*v, target)) error(key_path, pos, problem->message, problem->hint);
    }
    for (auto& spec : schema()) {
      if (spec.section != section || !spec.required || seen.count(std::string(spec.name))) continue;
      // A cgi app runs either one program (command) or the scripts below root.
      if (section == Section::App && spec.name == "command" && target.app->kind == AppKind::Cgi &&
          !target.app->root.empty())
        continue;
      // A wsgi app is corral-worker hosting `module`: no command.
      if (section == Section::App && spec.name == "command" && target.app->kind == AppKind::Wsgi) continue;
      error(path, table_pos, "missing required key '" + std::string(spec.name) + "' in " + display,
            "for example " + std::string(spec.name) + " = " + std::string(spec.example));
    }
    return diags_.items.size() == errors_before;
  }

  Position position(const std::string& key_path) const {
    auto it = positions_.find(key_path);
    return it == positions_.end() ? Position{} : it->second;
  }

  /// The key's position, else that of the nearest enclosing table written in the file
  /// ("app.shop.cwd" left to its default → the [app.shop] line).
  Position position_or_table(std::string key_path) const {
    for (;;) {
      if (auto it = positions_.find(key_path); it != positions_.end()) return it->second;
      size_t dot = key_path.rfind('.');
      if (dot == std::string::npos) return {};
      key_path.resize(dot);
    }
  }

  std::string resolve(const std::string& p) const {
    fs::path path(p);
    if (path.is_relative()) path = dir_ / path;
    return path.lexically_normal().string();
  }

  /// The one rule for every key that names a file or folder: a relative path is relative to
  /// the config file's folder (as nginx resolves against its prefix), never to the current
  /// directory of whoever runs the supervisor. A new path key is added here.
  void resolve_paths(Config& c) {
    auto& dir = c.supervisor.runtime_dir;
    dir = resolve(dir);
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    // Worker sockets live below it and Unix socket paths are limited to 107 bytes.
    if (dir.size() > 80)
      error("supervisor.runtime_dir", position("supervisor.runtime_dir"),
            "runtime_dir " + dir + " is longer than 80 characters; Unix socket paths below it would not fit",
            "use a shorter path, e.g. \"/run/corral\"");
    if (c.proxy.access_log != "-" && c.proxy.access_log != "off") c.proxy.access_log = resolve(c.proxy.access_log);
    if (c.proxy.admin.find('/') != std::string::npos) c.proxy.admin = resolve(c.proxy.admin);
    if (!c.proxy.temp_dir.empty()) {
      c.proxy.temp_dir = resolve(c.proxy.temp_dir);
      while (c.proxy.temp_dir.size() > 1 && c.proxy.temp_dir.back() == '/') c.proxy.temp_dir.pop_back();
    }
    for (auto& l : c.listeners) {
      for (auto& cert : l.tls) {
        cert.cert = resolve(cert.cert);
        cert.key = resolve(cert.key);
      }
    }
    for (auto& a : c.apps) {
      // A bare program name ("python3") is looked up in PATH when the worker starts.
      if (!a.command.empty() && a.command[0].find('/') != std::string::npos) a.command[0] = resolve(a.command[0]);
      a.cwd = a.cwd.empty() ? dir_.string() : resolve(a.cwd);
      if (!a.root.empty()) a.root = resolve(a.root);
      if (!a.script_filename.empty()) a.script_filename = resolve(a.script_filename);
      for (auto& p : a.python_path) p = resolve(p);
      if (!a.virtualenv.empty()) a.virtualenv = resolve(a.virtualenv);
    }
    for (auto& r : c.routes)
      if (!r.static_root.empty()) r.static_root = resolve(r.static_root);
  }

  /// A route has app or static, not both; a static route's folder exists and its fallback
  /// is an app; the static keys mean nothing on an app route.
  void check_static_route(const Route& r, const std::string& path, const std::vector<std::string_view>& app_names,
                          const Config& c) {
    // Presence, not value: a key written with a bad value is reported by its own check.
    if (!positions_.count(path + ".app") && !positions_.count(path + ".static"))
      error(path, position(path), "missing required key 'app' in [[route]]",
            "for example app = \"shop\", or static = \"/srv/site/static\" to serve files");
    if (r.static_root.empty()) {
      for (const char* key : {"index", "cache_control", "fallback", "follow_symlinks"})
        if (positions_.count(path + "." + key))
          error(path + "." + key, position(path + "." + key), std::string(key) + " applies only to a static route",
                "remove it, or serve files with static = \"DIR\" instead of app");
      return;
    }
    if (positions_.count(path + ".app"))
      error(path + ".app", position(path + ".app"), "a route has either app or static, not both",
            "use fallback = \"" + r.app + "\" to send requests no file matches to the app");
    std::error_code ec;
    auto st = fs::status(r.static_root, ec);
    if (ec || !fs::exists(st))
      error(path + ".static", position(path + ".static"), "static folder " + r.static_root + " does not exist",
            "create it or fix the path");
    else if (!fs::is_directory(st))
      error(path + ".static", position(path + ".static"), "static " + r.static_root + " is not a folder");
    if (!r.fallback.empty()) check_app_named(r.fallback, path + ".fallback", app_names, c);
  }

  /// Reports `key` naming an app that is not defined, with the nearest name as a suggestion.
  void check_app_named(const std::string& name, const std::string& key, const std::vector<std::string_view>& app_names,
                       const Config& c) {
    if (c.find_app(name)) return;
    std::string hint;
    if (auto guess = did_you_mean(name, app_names); !guess.empty()) hint = "did you mean '" + guess + "'?";
    else hint = "define it as [app." + name + "]";
    error(key, position(key), "no app named '" + name + "'", hint);
  }

  // module / python_path / virtualenv / worker_class belong to kind "wsgi", which needs a
  // module and no command; worker_class defaults to gunicorn's choice (sync for one request
  // at a time, else gthread).
  void check_wsgi_keys(App& a) {
    const std::string path = "app." + a.name;
    if (a.kind != AppKind::Wsgi) {
      for (const char* key : {"module", "python_path", "virtualenv", "worker_class"})
        if (positions_.count(path + "." + key))
          error(path + "." + key, position(path + "." + key), std::string(key) + " applies only to kind \"wsgi\"",
                "remove it or set kind = \"wsgi\"");
      a.module.clear(), a.python_path.clear(), a.virtualenv.clear(), a.worker_class.clear();
      return;
    }
    if (positions_.count(path + ".command"))
      error(path + ".command", position(path + ".command"), "a wsgi app runs in corral-worker and has no command",
            "remove command; module names the app");
    if (a.module.empty() && !positions_.count(path + ".module"))
      error(path, position(path), "missing required key 'module' in [app." + a.name + "] (kind = \"wsgi\")",
            "for example module = \"myproject.wsgi:app\"");
    if (a.worker_class.empty()) a.worker_class = a.concurrency == 1 ? "sync" : "gthread";
    if (a.worker_class == "sync" && a.concurrency != 1)
      error(path + ".worker_class", position(path + ".worker_class"),
            "worker_class \"sync\" serves one request at a time, but concurrency is " + std::to_string(a.concurrency),
            "use worker_class = \"gthread\" (threads) or \"gevent\" (greenlets), or concurrency = 1");
  }

  // Tunnels (WebSocket and other Upgrades) are forwarded to kind "http" only.
  void check_tunnel_keys(const App& a) {
    if (a.kind == AppKind::Http) return;
    const std::string path = "app." + a.name;
    for (const char* key : {"max_tunnels", "tunnel_idle_timeout"})
      if (positions_.count(path + "." + key))
        error(path + "." + key, position(path + "." + key),
              std::string(key) + " applies only to kind \"http\" (only http apps get WebSocket/Upgrade requests)",
              "remove it or set kind = \"http\"");
  }

  // root / script_filename only mean something for cgi and fastcgi, and a cgi app runs
  // either one program or a folder of scripts.
  void check_legacy_keys(const App& a) {
    const std::string path = "app." + a.name;
    if (a.kind == AppKind::Http || a.kind == AppKind::Wsgi) {
      for (const char* key : {"root", "script_filename"})
        if (positions_.count(path + "." + key))
          error(path + "." + key, position(path + "." + key),
                std::string(key) + " applies only to kind \"cgi\" or \"fastcgi\"", "remove it or set kind");
      return;
    }
    if (a.kind == AppKind::Cgi && !a.root.empty() && positions_.count(path + ".command"))
      error(path + ".root", position(path + ".root"), "a cgi app has either command (one program) or root (a folder of scripts), not both",
            "remove one of them");
    if (!a.root.empty() && !a.script_filename.empty())
      error(path + ".script_filename", position(path + ".script_filename"),
            "script_filename and root exclude each other (root maps each request to its own script)", "remove one of them");
  }

  /// Reads the certificate and key files of a TLS listener (now, while the supervisor may
  /// still be root) and checks them; errors name the file.
  void check_listener_tls(Listener& l, const std::string& path) {
    if (l.tls.empty()) {
      if (!l.hsts.empty())
        error(path + ".hsts", position(path + ".hsts"), "hsts applies only to a TLS listener", "add tls or remove hsts");
      return;
    }
    if (l.redirect_https)
      error(path + ".redirect_https", position(path + ".redirect_https"),
            "redirect_https applies only to a plaintext listener", "remove it from the TLS listener");
    for (auto& cert : l.tls) {
      if (auto problem = load_tls_cert(cert)) error(path + ".tls", position(path + ".tls"), *problem);
    }
  }

  void cross_check(Config& c) {
    resolve_paths(c);
    if (c.listeners.empty())
      error("", {}, "no [[listener]]: nothing would accept connections",
            "add [[listener]] with address = \"127.0.0.1:8080\"");
    std::map<std::pair<std::string, uint16_t>, size_t> bound;
    for (size_t i = 0; i < c.listeners.size(); ++i) {
      auto& l = c.listeners[i];
      if (l.address.empty() || l.port == 0) continue;  // invalid (reported) or ephemeral
      auto [it, fresh] = bound.emplace(std::pair(l.host, l.port), i);
      if (!fresh) {
        std::string first = "listener[" + std::to_string(it->second) + "].address";
        std::string path = "listener[" + std::to_string(i) + "].address";
        error(path, position(path),
              "duplicate listener '" + l.address + "' (already at line " + std::to_string(position(first).line) + ")",
              "remove one of them");
      }
    }
    for (size_t i = 0; i < c.listeners.size(); ++i) check_listener_tls(c.listeners[i], "listener[" + std::to_string(i) + "]");
    for (size_t i = 0; i < c.listeners.size(); ++i) {
      const auto& l = c.listeners[i];
      const std::string at = "listener[" + std::to_string(i) + "]";
      if (l.proxy_protocol && l.proxy_protocol_trusted.empty())
        error(at + ".proxy_protocol", position(at + ".proxy_protocol"),
              "proxy_protocol = true needs proxy_protocol_trusted: the balancers' addresses (anyone else could claim any client address)",
              "add proxy_protocol_trusted = [\"10.0.0.0/8\"] with your load balancers' ranges");
      if (!l.proxy_protocol && !l.proxy_protocol_trusted.empty())
        error(at + ".proxy_protocol_trusted", position(at + ".proxy_protocol_trusted"),
              "proxy_protocol_trusted applies only with proxy_protocol = true", "add proxy_protocol = true or remove it");
      if (l.max_connections && l.max_connections_per_client > l.max_connections) {
        std::string path = "listener[" + std::to_string(i) + "].max_connections_per_client";
        error(path, position(path),
              "max_connections_per_client (" + std::to_string(l.max_connections_per_client) +
                  ") is above the listener's max_connections (" + std::to_string(l.max_connections) + "): it would never apply",
              "lower it, or raise max_connections");
      }
    }

    std::vector<std::string_view> app_names;
    for (auto& a : c.apps) app_names.push_back(a.name);
    std::map<std::pair<std::string, std::string>, size_t> matches;
    for (size_t i = 0; i < c.routes.size(); ++i) {
      auto& r = c.routes[i];
      std::string path = "route[" + std::to_string(i) + "]";
      if (!r.app.empty()) check_app_named(r.app, path + ".app", app_names, c);
      check_static_route(r, path, app_names, c);
      auto [it, fresh] = matches.emplace(std::pair(r.host, r.path), i);
      if (!fresh)
        error(path, position(path),
              "unreachable: route[" + std::to_string(it->second) + "] already matches host '" + r.host +
                  "' and path '" + r.path + "'");
    }
    // No [[route]] is allowed: every request then gets 404.

    // An app mounted under a prefix may answer only there: unless health_path is set, the
    // readiness probe asks where the first route to the app (in file order) sends requests.
    for (auto& a : c.apps) {
      if (positions_.count("app." + a.name + ".health_path")) continue;
      for (auto& r : c.routes) {
        if (r.app != a.name) continue;
        a.health_path = r.path;
        break;
      }
    }

    int cores = 0;
    for (auto& a : c.apps) {
      if (a.workers_auto) {
        if (cores == 0) cores = usable_cores();
        a.workers = auto_workers(cores);
      }
      check_legacy_keys(a);
      check_tunnel_keys(a);
      check_wsgi_keys(a);
    }
  }

  std::string file_;
  fs::path dir_;
  Diagnostics& diags_;
  std::map<std::string, Position> positions_;
};

}  // namespace

tl::expected<Config, Diagnostics> load_string(std::string_view text, const std::string& file,
                                              const HostCheck& host_check) {
  Diagnostics diags;
  toml::parse_result parsed = toml::parse(text, file);
  if (!parsed) {
    auto& e = parsed.error();
    diags.add(syntax_error(text, file, static_cast<int>(e.source().begin.line),
                           static_cast<int>(e.source().begin.column), e.description()));
    return tl::unexpected(std::move(diags));
  }
  Loader loader(file, diags);
  Config c = loader.load(parsed.table(), host_check);
  if (!diags.empty()) {
    diags.sort_by_position();
    return tl::unexpected(std::move(diags));
  }
  return c;
}

namespace {

/// runtime_dir of a parsed [supervisor] table: nullopt when absent, "" when not a usable string.
std::optional<std::string> runtime_dir_of(const toml::table& root) {
  const toml::node* n = root.at_path("supervisor.runtime_dir").node();
  if (!n) return std::nullopt;
  if (!n->is_string()) return std::string();
  return n->as_string()->get();
}

std::string_view trim(std::string_view s) {
  s = trim_ows(s);
  while (!s.empty() && s.back() == '\r') s = trim_ows(s.substr(0, s.size() - 1));
  return s;
}

/// The lines of the [supervisor] table of a file that does not parse as a whole.
std::string supervisor_section(std::string_view text) {
  std::string out;
  bool inside = false;
  for (auto line : split(text, '\n')) {
    std::string_view t = trim(line);
    if (!t.empty() && t.front() == '[') {
      std::string_view header = t.substr(0, t.find('#'));
      inside = trim(header) == "[supervisor]";
    }
    if (inside) out.append(line).push_back('\n');
  }
  return out;
}

}  // namespace

RuntimeDirLookup read_runtime_dir(const std::string& path) {
  const std::string kDefault = SupervisorSettings{}.runtime_dir;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return {kDefault, "cannot read " + path + ": " + std::strerror(err) + "; using runtime_dir " + kDefault};
  }
  std::ostringstream os;
  os << in.rdbuf();
  const std::string text = os.str();
  std::optional<std::string> dir;
  if (toml::parse_result whole = toml::parse(text, path)) {
    dir = runtime_dir_of(whole.table());
  } else {
    // The rest of the file may be broken: [supervisor] alone, else its runtime_dir line alone.
    std::string section = supervisor_section(text);
    if (toml::parse_result part = toml::parse(section, path)) {
      dir = runtime_dir_of(part.table());
    } else {
      for (auto line : split(section, '\n')) {
        if (trim(line).substr(0, 11) != "runtime_dir") continue;
        toml::parse_result one = toml::parse("[supervisor]\n" + std::string(line), path);
        dir = one ? runtime_dir_of(one.table()) : std::string();
      }
      if (!dir && !section.empty()) dir = std::string();  // a [supervisor] table we could not read
    }
  }
  if (!dir) return {kDefault, ""};  // not set: the default is right
  if (dir->empty())
    return {kDefault, path + ": cannot read [supervisor] runtime_dir; using " + kDefault};
  fs::path p(*dir);
  if (p.is_relative()) {
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(path), ec);
    p = (ec ? fs::path(path) : abs).lexically_normal().parent_path() / p;
  }
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return {out, ""};
}

tl::expected<Config, Diagnostics> load_file(const std::string& path, const HostCheck& host_check) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    Diagnostics diags;
    diags.add(Diagnostic{path, 0, 0, "", std::string("cannot read the config file: ") + std::strerror(err), ""});
    return tl::unexpected(std::move(diags));
  }
  std::ostringstream os;
  os << in.rdbuf();
  return load_string(os.str(), path, host_check);
}

}  // namespace corral::conf
