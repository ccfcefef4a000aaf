#pragma once
// Config errors that name file, line, key and what is wrong, with a hint when we can
// guess the fix ("did you mean 'workers'?").
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corral::conf {

struct Diagnostic {
  std::string file;
  int line = 0;       ///< 1-based; 0 when unknown
  int column = 0;     ///< 1-based; 0 when unknown
  std::string key;    ///< dotted path: "app.shop.workers", "listener[1].address" (0-based); the table for unknown keys
  std::string message;
  std::string hint;   ///< may be empty

  /// "corral.toml:12:1: app.shop: unknown key 'wokers' in [app.shop]; did you mean 'workers'?"
  /// One line of printable text: control characters (from keys and values quoted from the
  /// file) are written as \xNN.
  std::string to_string() const;
};

struct Diagnostics {
  std::vector<Diagnostic> items;
  /// One line per diagnostic.
  std::string to_string() const;
  bool empty() const { return items.empty(); }
  void add(Diagnostic d) { items.push_back(std::move(d)); }
  /// Stable sort by position in the file; diagnostics without a line go last.
  void sort_by_position();
};

/// The closest candidate by edit distance (ASCII case-insensitive), or empty when none is
/// close enough to be a plausible typo.
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace corral::conf
