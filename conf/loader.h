#pragma once
// TOML (toml++) → validated Config. Never throws; never partially applies.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "conf/config.h"
#include "conf/diagnostics.h"

namespace corral::conf {

/// A problem found on the machine rather than in the text (a program or folder that is not
/// there), named by the dotted key it comes from: "app.shop.command".
struct KeyProblem {
  std::string key;
  std::string message;
  std::string hint;  ///< may be empty
};

/// Checks a config against the machine it is meant to run on. The loader calls it with the
/// loaded config (even one with other errors, so that all are reported at once) and reports
/// each problem at the line of its key, or of the key's table when the key is not written.
using HostCheck = std::function<std::vector<KeyProblem>(const Config&)>;

/// Reads and validates a config file. Every path in it (runtime_dir, access_log, TLS
/// cert/key, command[0] when it contains a '/', cwd, root, script_filename, python_path,
/// virtualenv) is made absolute: a relative one is relative to the file's folder. "auto"
/// worker counts are resolved with usable_cores() (cores.h).
/// `host_check` (may be empty) adds problems of the machine; without it only the TLS files
/// are read. The supervisor passes its own (supervisor/check.h, load_config()).
[[nodiscard]] tl::expected<Config, Diagnostics> load_file(const std::string& path, const HostCheck& host_check = {});

/// Same, from a string; `file` is used in messages and for resolving relative paths.
[[nodiscard]] tl::expected<Config, Diagnostics> load_string(std::string_view toml, const std::string& file,
                                                            const HostCheck& host_check = {});

/// Where corralctl finds the supervisor, from a config file that may be broken (when status,
/// stop or reload is needed most): only [supervisor] runtime_dir is read, resolved like the
/// loader does. A file with a syntax error elsewhere is fine: the [supervisor] table, or
/// failing that its runtime_dir line, is parsed alone.
struct RuntimeDirLookup {
  std::string dir;      ///< absolute; "/run/corral" (the default) when it cannot be read
  std::string warning;  ///< why the default was used although the file may say otherwise; empty when not
};
[[nodiscard]] RuntimeDirLookup read_runtime_dir(const std::string& path);

}  // namespace corral::conf
