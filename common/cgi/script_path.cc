#include "common/cgi/script_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace corral::cgi {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The decoded segment is unusable as a file name below root.
bool unsafe_name(std::string_view raw, std::string& decoded) {
  if (raw.empty()) return true;
  decoded.clear();
  if (!percent_decode(raw, decoded)) return true;
  if (decoded == "." || decoded == "..") return true;
  return decoded.find('/') != std::string::npos;
}

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return {};
  return buf;
}

}  // namespace

TargetParts split_target(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

bool percent_decode(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out.push_back(c);
  }
  return true;
}

std::string_view match_mount(std::string_view path, std::span<const std::string> mounts) {
  std::string_view best;
  for (const std::string& m : mounts) {
    std::string_view p = m;
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    if (p.empty() || p.size() <= best.size()) continue;
    if (path.substr(0, p.size()) != p) continue;
    if (path.size() == p.size() || path[p.size()] == '/') best = path.substr(0, p.size());
  }
  return best;
}

bool has_unsafe_segment(std::string_view raw_path) {
  std::string decoded;
  size_t start = raw_path.empty() || raw_path.front() != '/' ? 0 : 1;
  while (start <= raw_path.size()) {
    size_t slash = raw_path.find('/', start);
    std::string_view seg = raw_path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    // A trailing '/' leaves one empty last segment, which is harmless.
    bool last = slash == std::string_view::npos;
    if (!(last && seg.empty()) && unsafe_name(seg, decoded)) return true;
    if (last) break;
    start = slash + 1;
  }
  return false;
}

RootResult resolve_in_root(const std::string& root, std::string_view prefix, std::string_view rest, bool need_exec,
                           std::string_view index) {
  RootResult r;
  auto miss = [&r](Miss why, std::string path = {}, unsigned mode = 0, int err = 0) {
    r.miss = why;
    r.path = std::move(path);
    r.mode = mode;
    r.err = err;
    return std::move(r);
  };
  if (rest.empty() || rest.front() != '/') return miss(Miss::Folder, root);  // the mount itself ("/cgi-bin")
  if (has_unsafe_segment(rest)) return miss(Miss::Unsafe);
  std::string fs_path = root;
  std::string url_path(prefix);
  std::string decoded;
  size_t pos = 1;
  bool at_index = false;  // looking at the folder's index script
  while (pos <= rest.size()) {
    size_t slash = rest.find('/', pos);
    std::string_view seg = rest.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (seg.empty()) {
      // A folder path ("/", "/dir/"; has_unsafe_segment leaves no empty segment elsewhere):
      // its index script, as nginx's fastcgi_index, when there is one.
      if (index.empty()) return miss(Miss::Folder, fs_path);
      decoded.assign(index);
      at_index = true;
    } else {
      decoded.clear();
      if (!percent_decode(seg, decoded) || decoded.front() == '.') return miss(Miss::Unsafe);
    }
    fs_path += '/';
    fs_path += decoded;
    url_path += '/';
    url_path += decoded;
    struct stat st;
    if (::stat(fs_path.c_str(), &st) != 0) {
      int e = errno;
      return miss(e == ENOENT || e == ENOTDIR ? Miss::NotFound : Miss::Unreadable, fs_path, 0, e);
    }
    // Symlinks may point anywhere inside root, never outside it.
    std::string real = real_path(fs_path);
    if (real.empty()) return miss(Miss::Unreadable, fs_path, 0, errno);
    if (real.compare(0, root.size(), root) != 0 || (real.size() > root.size() && real[root.size()] != '/'))
      return miss(Miss::OutsideRoot, fs_path);
    if (S_ISDIR(st.st_mode) && !at_index) {
      if (slash == std::string_view::npos) return miss(Miss::Folder, fs_path);
      pos = slash + 1;
      continue;
    }
    if (!S_ISREG(st.st_mode)) return miss(S_ISDIR(st.st_mode) ? Miss::Folder : Miss::NotRegular, fs_path, st.st_mode);
    if (need_exec && ::access(real.c_str(), X_OK) != 0) return miss(Miss::NotExecutable, fs_path, st.st_mode, errno);
    Script s;
    s.filename = std::move(real);
    s.script_name = std::move(url_path);
    if (!at_index && slash != std::string_view::npos && !percent_decode(rest.substr(slash), s.path_info))
      return miss(Miss::BadRequest);
    r.script = std::move(s);
    return r;
  }
  return r;
}

std::string describe_miss(const RootResult& r, std::string_view request_path) {
  auto octal = [](unsigned mode) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
    return std::string(buf);
  };
  switch (r.miss) {
    case Miss::NotFound: return "no script at " + r.path + " (" + std::strerror(r.err) + ")";
    case Miss::BadRequest: return "undecodable path " + std::string(request_path);
    case Miss::Unsafe: return "refused path " + std::string(request_path) + " (a '.', '..', hidden, empty or encoded '/' segment)";
    case Miss::Folder: return r.path + " is a folder, not a script";
    case Miss::OutsideRoot: return "script " + r.path + " resolves outside root (a symlink leads out)";
    case Miss::NotRegular: {
      const char* what = S_ISFIFO(r.mode) ? "a FIFO" : S_ISSOCK(r.mode) ? "a socket"
                         : S_ISCHR(r.mode) ? "a character device" : S_ISBLK(r.mode) ? "a block device" : "special";
      return "script " + r.path + " is not a regular file (" + what + ")";
    }
    case Miss::NotExecutable:
      return "script " + r.path + " is not executable (mode " + octal(r.mode) + ")";
    case Miss::Unreadable: return "cannot look at script " + r.path + ": " + std::strerror(r.err);
  }
  return "no script for " + std::string(request_path);
}

bool miss_is_server_side(Miss m) {
  switch (m) {
    case Miss::NotExecutable:
    case Miss::NotRegular:
    case Miss::OutsideRoot:
    case Miss::Unreadable: return true;
    case Miss::NotFound:
    case Miss::BadRequest:
    case Miss::Unsafe:
    case Miss::Folder: return false;
  }
  return false;
}

std::optional<Script> fixed_script(const std::string& filename, std::string_view prefix, std::string_view rest) {
  Script s;
  s.filename = filename;
  s.script_name = std::string(prefix);
  if (!percent_decode(rest, s.path_info)) return std::nullopt;
  return s;
}

}  // namespace corral::cgi
