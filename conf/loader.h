#pragma once
// TOML (toml++) → validated Config. Never throws; never partially applies.
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "conf/config.h"
#include "conf/diagnostics.h"

namespace corral::conf {

/// Reads and validates a config file. Every path in it (runtime_dir, access_log, TLS
/// cert/key, command[0] when it contains a '/', cwd, root, script_filename, python_path,
/// virtualenv) is made absolute: a relative one is relative to the file's folder. "auto"
/// worker counts are resolved with usable_cores() (cores.h).
[[nodiscard]] tl::expected<Config, Diagnostics> load_file(const std::string& path);

/// Same, from a string; `file` is used in messages and for resolving relative paths.
[[nodiscard]] tl::expected<Config, Diagnostics> load_string(std::string_view toml, const std::string& file);

}  // namespace corral::conf
