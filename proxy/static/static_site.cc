#include "proxy/static/static_site.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <cstring>
#include <optional>

#include "common/base/log.h"
#include "common/base/cached_utc.h"
#include "common/base/strings.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy::statics {
namespace {

void text_answer(StaticAnswer& a, int status) {
  a.kind = StaticAnswer::Kind::Respond;
  a.status = status;
  a.file.reset();
  static constexpr std::string_view kBodies[] = {"Not Found\n", "Method Not Allowed\n", "Moved Permanently\n",
                                                 "Range Not Satisfiable\n"};
  a.body = status == 404 ? kBodies[0] : status == 405 ? kBodies[1] : status == 301 ? kBodies[2] : kBodies[3];
  a.content_length = a.body.size();
  a.headers.push_back({"Content-Type", "text/plain; charset=utf-8"});
}

}  // namespace


// ---- StaticRequest -----------------------------------------------------------------------

void StaticRequest::clear() {
  if_none_match.clear();
  if_modified_since.clear();
  range.clear();
  if_range.clear();
  accept = {};
  has_if_none_match = false;
}

void StaticRequest::capture(std::string_view name, std::string_view value, Fields which) {
  if (name.size() < 5 || which == Fields::None) return;
  switch (name[0] | 0x20) {
    case 'i':
      if (which != Fields::All) return;
      if (iequals(name, "if-none-match")) {
        // Several fields form one list.
        if (has_if_none_match) if_none_match.push_back(',');
        if_none_match.append(value);
        has_if_none_match = true;
      } else if (iequals(name, "if-modified-since")) {
        if_modified_since.assign(value);
      } else if (iequals(name, "if-range")) {
        if_range.assign(value);
      }
      return;
    case 'r':
      if (which == Fields::All && iequals(name, "range")) {
        if (!range.empty()) range.push_back(',');  // two Range fields: treated as several ranges
        range.append(value);
      }
      return;
    case 'a':
      if (iequals(name, "accept-encoding")) accept.add(value);
      return;
    default: return;
  }
}

// ---- StaticSite --------------------------------------------------------------------------

StaticSite::StaticSite(const conf::Route& route, std::shared_ptr<const MimeTypes> mime)
    : root_(::open(route.static_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
      root_path_(route.static_root),
      index_(route.index),
      cache_control_(route.cache_control),
      no_symlinks_(route.follow_symlinks == conf::FollowSymlinks::Off),
      mime_(std::move(mime)) {
  if (!root_) {
    CORRAL_LOG(Error, "static") << "route " << route.path << ": cannot open " << route.static_root << ": "
                                << std::strerror(errno) << "; its requests get 404";
  }
  // A site without its folder finds nothing whatever the key: all such sites share one.
  struct stat st;
  if (root_ && ::fstat(root_.get(), &st) == 0) {
    cache_key_ = std::to_string(st.st_dev);
    cache_key_.push_back(':');
    cache_key_.append(std::to_string(st.st_ino));
  }
  cache_key_.append(no_symlinks_ ? ":nofollow" : ":follow");
}

// ---- parsing helpers ---------------------------------------------------------------------

int parse_range(std::string_view range, uint64_t size, uint64_t& first, uint64_t& last) {
  range = trim_ows(range);
  if (range.size() < 6 || !iequals(range.substr(0, 6), "bytes=")) return 0;
  std::string_view spec = trim_ows(range.substr(6));
  if (spec.find(',') != std::string_view::npos) return 0;  // several ranges: the whole file
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return 0;
  std::string_view a = trim_ows(spec.substr(0, dash)), b = trim_ows(spec.substr(dash + 1));
  if (a.empty()) {  // suffix: the last N bytes
    const std::optional<uint64_t> suffix = parse_decimal(b);
    if (!suffix) return 0;
    const uint64_t n = *suffix;
    if (n == 0 || size == 0) return -1;
    first = n >= size ? 0 : size - n;
    last = size - 1;
    return 1;
  }
  const std::optional<uint64_t> from = parse_decimal(a);
  if (!from) return 0;
  const uint64_t f = *from;
  uint64_t l = UINT64_MAX;
  if (!b.empty()) {
    const std::optional<uint64_t> to = parse_decimal(b);
    if (!to) return 0;
    l = *to;
    if (l < f) return 0;  // invalid: ignored (RFC 9110 §14.1.1)
  }
  if (f >= size) return -1;
  first = f;
  last = l >= size ? size - 1 : l;
  return 1;
}

bool parse_http_date(std::string_view s, int64_t& out) {
  s = trim_ows(s);
  if (s.size() != 29 || s.substr(25) != " GMT" || s[3] != ',') return false;
  std::string z(s);
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  const char* end = ::strptime(z.c_str(), kHttpDateFormat, &tm);
  if (!end || *end != '\0') return false;
  out = static_cast<int64_t>(::timegm(&tm));
  return true;
}

bool etag_matches(std::string_view list, std::string_view etag) {
  // Weak comparison: W/ prefixes ignored on both sides.
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view t = trim_ows(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (t == "*") return true;
    if (t.substr(0, 2) == "W/") t.remove_prefix(2);
    if (t == etag) return true;
  }
  return false;
}

// ---- serve -------------------------------------------------------------------------------

StaticAnswer& serve(const StaticSite& site, std::string_view method, std::string_view target, std::string_view prefix,
                    const StaticRequest& req, bool has_fallback, std::chrono::steady_clock::time_point now) {
  static thread_local StaticAnswer a;
  a.kind = StaticAnswer::Kind::Respond;
  a.status = 200;
  a.headers.clear();
  a.file.reset();
  a.offset = a.length = a.content_length = 0;
  a.body = {};
  a.index_rel.clear();

  FileCache& cache = FileCache::for_this_thread();
  const FileCache::Entry* e = nullptr;
  if (map_static_path(target, prefix, a.path)) {
    e = &cache.get(site.cache_key(), site.root_fd(), site.no_symlinks(), a.path.rel, now);
    if (e->kind == FileKind::Directory) {
      if (!a.path.slash) {
        // nginx: a folder asked for without its '/' is redirected to it (relative Location).
        a.location.assign(a.path.path);
        a.location.push_back('/');
        a.location.append(a.path.query);
        text_answer(a, 301);
        a.headers.push_back({"Location", a.location});
        return a;
      }
      if (site.index().empty()) {
        e = nullptr;
      } else {
        a.index_rel.assign(a.path.rel);
        if (!a.index_rel.empty()) a.index_rel.push_back('/');
        a.index_rel.append(site.index());
        e = &cache.get(site.cache_key(), site.root_fd(), site.no_symlinks(), a.index_rel, now);
        if (e->kind != FileKind::File) e = nullptr;
      }
    } else if (e->kind == FileKind::File && a.path.slash) {
      e = nullptr;  // "a.css/": a file is not a folder
    } else if (e->kind != FileKind::File) {
      e = nullptr;
    }
  }
  if (!e) {
    if (has_fallback) {
      a.kind = StaticAnswer::Kind::Fallback;
      return a;
    }
    text_answer(a, 404);
    return a;
  }
  const bool head = method == "HEAD";
  if (!head && method != "GET") {
    text_answer(a, 405);
    a.headers.push_back({"Allow", "GET, HEAD"});
    return a;
  }

  // The representation: a precompressed sibling when the client takes it.
  const OpenFile* f = e->file.get();
  std::shared_ptr<const OpenFile> chosen = e->file;
  std::string_view encoding;
  const bool siblings = e->br || e->gz;
  if (siblings) {
    // The compressor's Accept-Encoding rules; br first, so it wins a tie.
    compress::Coding offered[2];
    size_t n = 0;
    if (e->br) offered[n++] = compress::Coding::Br;
    if (e->gz) offered[n++] = compress::Coding::Gzip;
    switch (compress::choose_coding(req.accept, std::span<const compress::Coding>(offered, n))) {
      case compress::Coding::Br: chosen = e->br; encoding = "br"; break;
      case compress::Coding::Gzip: chosen = e->gz; encoding = "gzip"; break;
      case compress::Coding::Identity: break;
    }
  }
  f = chosen.get();
  // The type is the file's (a.css.br is text/css), the index file's for a folder.
  std::string_view type = site.mime().content_type(a.path.slash ? a.index_rel : a.path.rel);

  a.date.assign(http_date_now());
  auto common = [&] {
    a.headers.push_back({"Date", a.date});
    a.headers.push_back({"ETag", f->etag});
    a.headers.push_back({"Last-Modified", f->last_modified});
    if (!site.cache_control().empty()) a.headers.push_back({"Cache-Control", site.cache_control()});
    if (siblings) a.headers.push_back({"Vary", "Accept-Encoding"});
  };

  // Conditional requests (RFC 9110 §13.2.2): If-None-Match, else If-Modified-Since.
  bool not_modified = false;
  if (req.has_if_none_match) {
    not_modified = etag_matches(req.if_none_match, f->etag);
  } else if (!req.if_modified_since.empty()) {
    int64_t since;
    not_modified = parse_http_date(req.if_modified_since, since) && f->mtime <= since;
  }
  if (not_modified) {
    a.status = 304;
    common();
    return a;
  }

  a.file = std::move(chosen);
  a.offset = 0;
  a.length = f->size;
  a.status = 200;
  // Ranges: GET only (RFC 9110 §14.2), and If-Range must still hold.
  if (!head && !req.range.empty()) {
    bool use = true;
    if (!req.if_range.empty()) {
      std::string_view ir = trim_ows(req.if_range);
      if (!ir.empty() && (ir.front() == '"' || ir.substr(0, 2) == "W/")) use = ir == f->etag;  // strong comparison
      else use = ir == f->last_modified;
    }
    uint64_t first = 0, last = 0;
    int r = use ? parse_range(req.range, f->size, first, last) : 0;
    if (r < 0) {
      a.file.reset();
      a.content_range.assign("bytes */");
      append_decimal(a.content_range, f->size);
      text_answer(a, 416);
      a.headers.push_back({"Content-Range", a.content_range});
      return a;
    }
    if (r > 0) {
      a.status = 206;
      a.offset = first;
      a.length = last - first + 1;
      a.content_range.assign("bytes ");
      append_decimal(a.content_range, first);
      a.content_range.push_back('-');
      append_decimal(a.content_range, last);
      a.content_range.push_back('/');
      append_decimal(a.content_range, f->size);
    }
  }
  a.content_length = a.length;
  a.headers.push_back({"Content-Type", type});
  if (!encoding.empty()) a.headers.push_back({"Content-Encoding", encoding});
  if (a.status == 206) a.headers.push_back({"Content-Range", a.content_range});
  a.headers.push_back({"Accept-Ranges", "bytes"});
  common();
  return a;
}

}  // namespace corral::proxy::statics
