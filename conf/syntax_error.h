#pragma once
// TOML syntax errors (toml++'s parse_error) turned into the loader's Diagnostic shape:
// "file:line:col: key: syntax error ...; hint", on one line. The key is the one whose value
// was being read ("app.shop.command", "listener[1].address"); an array, inline table, string
// or table header that the file ends inside is reported where it was opened, since toml++
// can only point at the end of the file. Pure functions; thread-safe.
#include <string>
#include <string_view>

#include "conf/diagnostics.h"

namespace corral::conf {

/// `text` is the whole file, `line`/`column` (1-based, columns in code points) and
/// `description` what toml++ reported.
Diagnostic syntax_error(std::string_view text, const std::string& file, int line, int column,
                        std::string_view description);

}  // namespace corral::conf
