#pragma once
// The one declarative table of config keys. Each row names the section, the key, its value
// type, its default (as a TOML literal), whether it is required, a one-line doc, and the
// function that validates a converted value and stores it into the config structs.
// The loader (loader.cc) walks TOML tables against this table: unknown keys ("did you mean"),
// type errors and impossible values all come from here. Docs can be generated from it.
// Pure data and pure functions; thread-safe.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/units.h"
#include "conf/config.h"

namespace corral::conf {

/// Where a key lives. Supervisor and Proxy are single tables, Listener and Route are arrays
/// of tables ([[listener]]), App is a table of named tables ([app.NAME]).
enum class Section { Supervisor, Proxy, Listener, Route, App };

/// "supervisor", "proxy", "listener", "route", "app".
std::string_view section_name(Section s);

/// The kinds of value a key accepts; the loader converts TOML nodes into a Value of this type.
enum class ValueType {
  String,         ///< TOML string
  Integer,        ///< TOML integer
  IntegerOrAuto,  ///< TOML integer or the string "auto"
  Duration,       ///< "30s", "250ms", "2m", "1h", or an integer number of seconds
  Size,           ///< "16MiB", "1KiB", or an integer number of bytes
  StringArray,    ///< array of strings
  StringTable,    ///< table whose values are strings
  Boolean,        ///< true or false
  /// Inline table of strings, integers and booleans, possibly with arrays of such tables;
  /// flattened into `table` with paths as keys ("cert", "certs[1].key"), values as text.
  Table,
};

/// "an integer or \"auto\"", "a duration like \"30s\" or an integer number of seconds", ...
std::string_view describe_type(ValueType t);

/// A converted value; only the member matching `type` is meaningful.
struct Value {
  ValueType type = ValueType::String;
  std::string text;      ///< String
  int64_t integer = 0;   ///< Integer, IntegerOrAuto (when not auto)
  bool is_auto = false;  ///< IntegerOrAuto written as "auto"
  Millis duration{0};    ///< Duration
  uint64_t size = 0;     ///< Size
  std::vector<std::string> list;                               ///< StringArray
  std::vector<std::pair<std::string, std::string>> table;      ///< StringTable, sorted by name; Table, flattened
  bool boolean = false;                                        ///< Boolean
};

/// Non-owning pointers to the struct the key of each section is stored in; only the one for
/// the row's section is used.
struct Target {
  SupervisorSettings* supervisor = nullptr;
  ProxySettings* proxy = nullptr;
  Listener* listener = nullptr;
  Route* route = nullptr;
  App* app = nullptr;
};

/// What is wrong with a value, and the fix when known. Printed as "key: message; hint".
struct Problem {
  std::string message;
  std::string hint;
};

/// Validates `v` and stores it into `t`; returns the problem when the value is impossible.
using ApplyFn = std::optional<Problem> (*)(const Value& v, Target& t);

struct KeySpec {
  Section section;
  std::string_view name;
  ValueType type;
  std::string_view default_value;  ///< TOML literal equal to the struct default; empty = required or none
  bool required;
  std::string_view example;        ///< TOML literal used in hints and docs
  std::string_view doc;            ///< one line
  ApplyFn apply;
};

/// Every key, grouped by section in documentation order.
std::span<const KeySpec> schema();

/// The row for `name` in `section`, or nullptr.
const KeySpec* find_key(Section section, std::string_view name);

/// All key names of a section (for "did you mean").
std::vector<std::string_view> key_names(Section section);

/// Every key as commented TOML, section by section: the doc line, then `name = default`
/// (or the example, commented out, for keys without a default). Feeds README and man pages.
std::string reference_toml();

/// Valid app name: [A-Za-z0-9_-]+.
bool is_valid_app_name(std::string_view name);

}  // namespace corral::conf
