#pragma once
// Mapping a request target onto a CGI/FastCGI script (RFC 3875 §4.1.5, §4.1.13): the route
// prefix the app is mounted at, then either one fixed program (everything after the prefix
// is PATH_INFO) or a directory of scripts (`root`: the first regular file on the path is the
// script, the rest is PATH_INFO). Used by corral-worker (kind "cgi") and by the proxy's
// FastCGI client. Thread-safe (no shared state); resolve_in_root() touches the filesystem.
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace corral::cgi {

/// The path and query of an origin-form target ("/a/b?x=1" → "/a/b", "x=1").
struct TargetParts {
  std::string_view path;
  std::string_view query;  ///< without the '?'; empty when there is none
};
TargetParts split_target(std::string_view target);

/// Percent-decodes `in` into `out`. Returns false on a malformed escape ("%4", "%zz") or a
/// decoded NUL byte (never valid in a path or an environment variable).
bool percent_decode(std::string_view in, std::string& out);

/// The longest of `mounts` (route path prefixes, e.g. "/cgi-bin" or "/cgi-bin/") that
/// `path` falls under, with any trailing '/' removed: "/cgi-bin" matches "/cgi-bin" and
/// "/cgi-bin/x", not "/cgi-binx". "/" (or no match) gives "". A view into `path`.
std::string_view match_mount(std::string_view path, std::span<const std::string> mounts);

/// True when some segment of the raw path, percent-decoded, is "." or ".." or contains a
/// '/' or a NUL (an encoded "%2e%2e", "%2F" or "%00" included), or when a segment is empty
/// ("//"). Such paths never reach a script in root mode.
bool has_unsafe_segment(std::string_view raw_path);

/// A script found for a request.
struct Script {
  std::string filename;     ///< absolute, symlinks resolved (SCRIPT_FILENAME; what runs)
  std::string script_name;  ///< URL path of the script (SCRIPT_NAME)
  std::string path_info;    ///< decoded rest of the path (PATH_INFO); may be empty
};

/// Why a path has no script.
enum class Miss { NotFound, BadRequest };

/// Root mode: walks `rest` (the raw path after the mount prefix) below `root` (absolute,
/// symlinks already resolved). Each segment must be safe (see has_unsafe_segment; hidden
/// names starting with '.' are refused too); directories are descended into; the first
/// regular file is the script, and it must stay inside `root` after resolving symlinks and
/// be executable when `need_exec`. Anything else → NotFound (nothing is run).
struct RootResult {
  std::optional<Script> script;
  Miss miss = Miss::NotFound;
};
RootResult resolve_in_root(const std::string& root, std::string_view prefix, std::string_view rest, bool need_exec);

/// Command mode: SCRIPT_NAME = prefix, PATH_INFO = decoded rest, filename as given.
/// Returns nullopt (400) when `rest` does not decode.
std::optional<Script> fixed_script(const std::string& filename, std::string_view prefix, std::string_view rest);

}  // namespace corral::cgi
