#pragma once
// A static route ([[route]] static = "DIR"): its folder, settings, and the answer to one
// request, decided without any I/O but the open-file cache's. The Exchange turns the answer
// into a response (head + the open file as body); the frontends send the file with
// sendfile(2) (HTTP/1.1 plaintext), pread into a reused per-thread buffer written through
// TLS, or pread straight into nghttp2's frame buffer (HTTP/2).
//
// What serve() implements: GET and HEAD (others: 405 with Allow, or the fallback app when no
// file matches); the index file of a folder path and the 301 of a folder without its
// trailing '/'; ETag (nginx's) and Last-Modified, If-None-Match (weak comparison, "*") and
// If-Modified-Since → 304; one byte range → 206 (several: the whole file, 200), an
// unsatisfiable one → 416 with "Content-Range: bytes */SIZE", If-Range (an ETag, strong
// comparison, or the exact Last-Modified date); precompressed FILE.br / FILE.gz chosen by
// Accept-Encoding q-values (br preferred on a tie), with Content-Encoding, and
// "Vary: Accept-Encoding" on every response of a file that has a sibling.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/http1/parser.h"
#include "conf/config.h"
#include "proxy/compress/accept_encoding.h"
#include "proxy/static/mime_types.h"
#include "proxy/static/open_file.h"
#include "proxy/static/static_path.h"

namespace corral::proxy::statics {

/// The request fields a static answer depends on, and the Accept-Encoding the compressor
/// reads (captured by the frontends as Exchange::field_capture() says; strings keep their
/// capacity).
struct StaticRequest {
  /// Which fields capture() keeps: a compressing route reads only Accept-Encoding, a
  /// static answer all of them.
  enum class Fields { None, AcceptEncoding, All };
  std::string if_none_match, if_modified_since, range, if_range;
  compress::AcceptEncoding accept;  ///< the Accept-Encoding fields (which sibling or coding to send)
  bool has_if_none_match = false;
  void clear();
  /// Keeps `value` when `name` (any case) is one of the fields above that `which` covers.
  void capture(std::string_view name, std::string_view value, Fields which);
};

class StaticSite {
 public:
  /// Opens the folder (O_PATH); a folder that cannot be opened is logged and every request
  /// to the route is answered as "no file" (404, or the fallback app).
  StaticSite(const conf::Route& route, std::shared_ptr<const MimeTypes> mime);
  /// What identifies the site's files in the open-file cache: the opened folder's device
  /// and inode and the symlink setting. The next config's site for the same folder has the
  /// same key (and finds the cache warm); a folder replaced under the same path does not.
  const std::string& cache_key() const { return cache_key_; }
  int root_fd() const { return root_.get(); }
  const std::string& root() const { return root_path_; }
  const std::string& index() const { return index_; }
  const std::string& cache_control() const { return cache_control_; }
  bool no_symlinks() const { return no_symlinks_; }
  const MimeTypes& mime() const { return *mime_; }

 private:
  UniqueFd root_;
  std::string cache_key_;
  std::string root_path_, index_, cache_control_;
  bool no_symlinks_ = false;
  std::shared_ptr<const MimeTypes> mime_;
};

/// The answer to one request.
struct StaticAnswer {
  enum class Kind { Respond, Fallback };
  Kind kind = Kind::Respond;
  int status = 200;
  std::vector<http1::Header> headers;  ///< views into this answer's strings and the file
  std::shared_ptr<const OpenFile> file;  ///< the body when set: `length` bytes from `offset`
  uint64_t offset = 0, length = 0;
  uint64_t content_length = 0;  ///< announced (HEAD: the GET's)
  std::string_view body;        ///< a short text body (errors) when no file

  // Storage the header views point into.
  std::string content_range, location, date;
  StaticPath path;
  std::string index_rel;
};

/// Decides the answer for (`method`, `target`) routed to `site` by a route with path
/// `prefix`. `has_fallback`: no matching file → Kind::Fallback instead of 404. The answer
/// is valid until the next call on this thread.
StaticAnswer& serve(const StaticSite& site, std::string_view method, std::string_view target, std::string_view prefix,
                    const StaticRequest& req, bool has_fallback, std::chrono::steady_clock::time_point now);

/// Parsing helpers (pure; unit-tested).
/// "bytes=a-b" against `size`: 1 = one satisfiable range (first..last inclusive), 0 = ignore
/// the field (bad syntax, several ranges, another unit), -1 = unsatisfiable (416).
int parse_range(std::string_view range, uint64_t size, uint64_t& first, uint64_t& last);
/// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") → seconds; false when it is not one.
bool parse_http_date(std::string_view s, int64_t& out);
/// If-None-Match `list` matches `etag` (weak comparison; "*" matches).
bool etag_matches(std::string_view list, std::string_view etag);

}  // namespace corral::proxy::statics
