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

/// Why a path has no script. BadRequest is answered 400, every other miss 404.
enum class Miss {
  NotFound,       ///< nothing at `path` (ENOENT, ENOTDIR)
  BadRequest,     ///< the rest of the path (PATH_INFO) does not percent-decode
  Unsafe,         ///< a ".", "..", hidden, empty or encoded-'/' segment: refused unlooked-at
  Folder,         ///< `path` is a folder and the request names no script in it
  OutsideRoot,    ///< `path` resolves (through a symlink) outside root
  NotRegular,     ///< `path` is a device, FIFO or socket
  NotExecutable,  ///< `path` lacks the execute permission a CGI program needs
  Unreadable,     ///< stat or realpath on `path` failed otherwise (EACCES, ELOOP, ...): `err`
};

/// Root mode: walks `rest` (the raw path after the mount prefix) below `root` (absolute,
/// symlinks already resolved). Each segment must be safe (see has_unsafe_segment; hidden
/// names starting with '.' are refused too); directories are descended into; the first
/// regular file is the script, and it must stay inside `root` after resolving symlinks and
/// be executable when `need_exec`. A folder path ("/", "/sub/") runs the folder's `index`
/// file (a plain file name, e.g. "index.php"; SCRIPT_NAME ends in it, no PATH_INFO) under
/// the same rules; with `index` empty, or a folder named without its trailing '/', it is a
/// miss. Anything else is a miss (nothing is run), with the reason and the file it is
/// about, for the log (describe_miss).
struct RootResult {
  std::optional<Script> script;
  Miss miss = Miss::NotFound;
  std::string path;   ///< the file the miss is about; "" for Unsafe and BadRequest
  unsigned mode = 0;  ///< st_mode of `path` (NotRegular, NotExecutable)
  int err = 0;        ///< errno (NotFound, Unreadable)
};
RootResult resolve_in_root(const std::string& root, std::string_view prefix, std::string_view rest, bool need_exec,
                           std::string_view index = {});

/// A log line's text for a miss (`r.script` empty), e.g. "script /srv/cgi-bin/x.sh is not
/// executable (mode 0644)"; `request_path` names the request when no file is involved.
std::string describe_miss(const RootResult& r, std::string_view request_path);

/// True for the misses that point at the server's files or config (NotExecutable,
/// NotRegular, OutsideRoot, Unreadable): worth a warning. The others (nothing there, a
/// refused or undecodable path, a folder) are the client's doing: informational.
bool miss_is_server_side(Miss m);

/// Command mode: SCRIPT_NAME = prefix, PATH_INFO = decoded rest, filename as given.
/// Returns nullopt (400) when `rest` does not decode.
std::optional<Script> fixed_script(const std::string& filename, std::string_view prefix, std::string_view rest);

}  // namespace corral::cgi
