#pragma once
// Config errors that name file, line, key and what is wrong, with a hint when we can
// guess the fix ("did you mean 'workers'?").
#include <string>
#include <string_view>
#include <vector>

namespace corral::conf {

struct Diagnostic {
  std::string file;
  int line = 0;       ///< 1-based; 0 when unknown
  int column = 0;     ///< 1-based; 0 when unknown
  std::string key;    ///< dotted path: "app.shop.workers", "listener[1].address"
  std::string message;
  std::string hint;   ///< may be empty

  /// "corral.toml:12:1: app.shop.wokers: unknown key 'wokers' in [app.shop]; did you mean 'workers'?"
  std::string to_string() const;
};

struct Diagnostics {
  std::vector<Diagnostic> items;
  /// One line per diagnostic.
  std::string to_string() const;
};

/// The closest candidate by edit distance, or empty when none is close enough.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace corral::conf
