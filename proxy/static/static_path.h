#pragma once
// Request target → path below a static route's folder, and nothing else. Pure functions
// (unit-tested in tests/unit/proxy/static_path_test.cc).
//
// nginx `alias` semantics: the route's path prefix is stripped, the rest is the path inside
// the folder (route path "/static", target "/static/css/a.css" → "css/a.css"). The rest is
// percent-decoded exactly once, and the request is refused (the caller answers 404) when it
// holds anything that could name a file outside the folder or a file the folder's owner did
// not mean to publish: a "." or ".." segment, an encoded '/' or '\' (%2F, %5C), a backslash,
// NUL or another control character, a double-encoded form of any of these or of '.'/'%'
// (%252e, %255c, ...), a malformed escape, or a hidden segment (".git", ".env"; only
// ".well-known" is served). Empty segments ("a//b") are merged, as nginx does.
#include <string>
#include <string_view>

namespace corral::proxy::statics {

struct StaticPath {
  std::string rel;       ///< "css/a.css"; "" = the folder itself
  bool slash = false;    ///< the target's path ended with '/' (a folder was asked for)
  std::string_view path; ///< the target's raw path (before '?'), for a redirect's Location
  std::string_view query;  ///< "?..." or empty
};

/// Maps `target` (origin-form or absolute-form) matched by a route with path `prefix`.
/// False: refuse (404). `out.rel` keeps its capacity across calls.
bool map_static_path(std::string_view target, std::string_view prefix, StaticPath& out);

}  // namespace corral::proxy::statics
