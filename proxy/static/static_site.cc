#include "proxy/static/static_site.h"

#include <fcntl.h>
#include <time.h>

#include <atomic>
#include <cstring>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "proxy/forwarding_headers.h"

namespace corral::proxy::statics {
namespace {

std::atomic<uint64_t> g_next_site{1};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

/// Date: of now, formatted once per second per thread.
std::string_view http_date_now() {
  static thread_local time_t last = 0;
  static thread_local char buf[40];
  static thread_local size_t len = 0;
  time_t now = ::time(nullptr);
  if (now != last || len == 0) {
    struct tm tm;
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    last = now;
  }
  return {buf, len};
}

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 416: return "Range Not Satisfiable";
    default: return "Error";
  }
}

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

std::string_view static_reason(int status) { return reason(status); }

// ---- StaticRequest -----------------------------------------------------------------------

void StaticRequest::clear() {
  if_none_match.clear();
  if_modified_since.clear();
  range.clear();
  if_range.clear();
  accept_encoding.clear();
  has_if_none_match = false;
}

void StaticRequest::capture(std::string_view name, std::string_view value) {
  if (name.size() < 5) return;
  switch (name[0] | 0x20) {
    case 'i':
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
      if (iequals(name, "range")) {
        if (!range.empty()) range.push_back(',');  // two Range fields: treated as several ranges
        range.append(value);
      }
      return;
    case 'a':
      if (iequals(name, "accept-encoding")) {
        if (!accept_encoding.empty()) accept_encoding.push_back(',');
        accept_encoding.append(value);
      }
      return;
    default: return;
  }
}

// ---- StaticSite --------------------------------------------------------------------------

StaticSite::StaticSite(const conf::Route& route, std::shared_ptr<const MimeTypes> mime)
    : id_(g_next_site.fetch_add(1)),
      root_(::open(route.static_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)),
      root_path_(route.static_root),
      index_(route.index),
      cache_control_(route.cache_control),
      no_symlinks_(route.follow_symlinks == conf::FollowSymlinks::Off),
      mime_(std::move(mime)) {
  if (!root_) {
    CORRAL_LOG(Error, "static") << "route " << route.path << ": cannot open " << route.static_root << ": "
                                << std::strerror(errno) << "; its requests get 404";
  }
}

// ---- parsing helpers ---------------------------------------------------------------------

double accept_q(std::string_view ae, std::string_view coding) {
  double star = -1, exact = -1;
  while (!ae.empty()) {
    size_t comma = ae.find(',');
    std::string_view item = trim(ae.substr(0, comma));
    ae = comma == std::string_view::npos ? std::string_view() : ae.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view name = trim(item.substr(0, semi));
    double q = 1;
    while (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      size_t next = params.find(';');
      std::string_view p = trim(params.substr(0, next));
      if (p.size() >= 2 && (p[0] | 0x20) == 'q' && p[1] == '=') {
        // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
        std::string_view v = p.substr(2);
        int milli = 0;  // in thousandths, exactly
        if (!v.empty() && (v[0] == '0' || v[0] == '1')) {
          milli = (v[0] - '0') * 1000;
          int scale = 100;
          for (size_t i = 2; i < v.size() && i < 5; ++i, scale /= 10)
            if (v[i] >= '0' && v[i] <= '9') milli += (v[i] - '0') * scale;
          if (milli > 1000) milli = 1000;
        }
        q = milli / 1000.0;
      }
      semi = next == std::string_view::npos ? std::string_view::npos : semi + 1 + next;
    }
    if (iequals(name, coding)) exact = q;
    else if (name == "*") star = q;
  }
  return exact >= 0 ? exact : star;
}

int parse_range(std::string_view range, uint64_t size, uint64_t& first, uint64_t& last) {
  range = trim(range);
  if (range.size() < 6 || !iequals(range.substr(0, 6), "bytes=")) return 0;
  std::string_view spec = trim(range.substr(6));
  if (spec.find(',') != std::string_view::npos) return 0;  // several ranges: the whole file
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return 0;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  if (a.empty()) {  // suffix: the last N bytes
    uint64_t n;
    if (!parse_u64(b, n)) return 0;
    if (n == 0 || size == 0) return -1;
    first = n >= size ? 0 : size - n;
    last = size - 1;
    return 1;
  }
  uint64_t f;
  if (!parse_u64(a, f)) return 0;
  uint64_t l = UINT64_MAX;
  if (!b.empty()) {
    if (!parse_u64(b, l)) return 0;
    if (l < f) return 0;  // invalid: ignored (RFC 9110 §14.1.1)
  }
  if (f >= size) return -1;
  first = f;
  last = l >= size ? size - 1 : l;
  return 1;
}

bool parse_http_date(std::string_view s, int64_t& out) {
  s = trim(s);
  if (s.size() != 29 || s.substr(25) != " GMT" || s[3] != ',') return false;
  std::string z(s);
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  const char* end = ::strptime(z.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return false;
  out = static_cast<int64_t>(::timegm(&tm));
  return true;
}

bool etag_matches(std::string_view list, std::string_view etag) {
  // Weak comparison: W/ prefixes ignored on both sides.
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view t = trim(list.substr(0, comma));
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
    e = &cache.get(site.id(), site.root_fd(), site.no_symlinks(), a.path.rel, now);
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
        e = &cache.get(site.id(), site.root_fd(), site.no_symlinks(), a.index_rel, now);
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
  if (siblings && !req.accept_encoding.empty()) {
    double qbr = e->br ? accept_q(req.accept_encoding, "br") : -1;
    double qgz = e->gz ? accept_q(req.accept_encoding, "gzip") : -1;
    if (qbr > 0 && qbr >= qgz) {
      chosen = e->br;
      encoding = "br";
    } else if (qgz > 0) {
      chosen = e->gz;
      encoding = "gzip";
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
      std::string_view ir = trim(req.if_range);
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
