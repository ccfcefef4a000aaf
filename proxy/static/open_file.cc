#include "proxy/static/open_file.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace corral::proxy::statics {
namespace {

std::atomic<bool> g_force_walk{false};
std::atomic<bool> g_no_openat2{false};  // learned on the first ENOSYS

int sys_openat2(int dirfd, const char* path, int flags, uint64_t resolve) {
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags);
  how.resolve = resolve;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
  } while (fd < 0 && errno == EINTR);
  return fd;
}

constexpr int kPathFlags = O_PATH | O_CLOEXEC;
constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

/// Opens a path beneath `root` by walking it component by component, refusing symlinks.
/// Returns an O_PATH descriptor (final component not followed) or -1.
int walk_path(int root, const std::string& rel) {
  if (rel.empty()) return ::openat(root, ".", kPathFlags | O_DIRECTORY);
  UniqueFd cur(::openat(root, ".", kPathFlags | O_DIRECTORY));
  size_t start = 0;
  while (cur) {
    size_t slash = rel.find('/', start);
    std::string comp = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp.empty() || comp == "." || comp == "..") return -1;
    if (slash == std::string::npos) return ::openat(cur.get(), comp.c_str(), kPathFlags | O_NOFOLLOW);
    // O_PATH | O_NOFOLLOW opens a symlink itself; O_DIRECTORY then refuses it.
    UniqueFd next(::openat(cur.get(), comp.c_str(), kPathFlags | O_NOFOLLOW | O_DIRECTORY));
    cur = std::move(next);
    start = slash + 1;
  }
  return -1;
}

void fill(OpenFile& f, const struct stat& st) {
  f.size = static_cast<uint64_t>(st.st_size);
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  f.mtime = st.st_mtim.tv_sec;
  f.mtime_nsec = st.st_mtim.tv_nsec;
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "\"%llx-%llx\"", static_cast<unsigned long long>(f.mtime),
                        static_cast<unsigned long long>(f.size));
  f.etag.assign(buf, static_cast<size_t>(n));
  struct tm tm;
  time_t t = static_cast<time_t>(f.mtime);
  gmtime_r(&t, &tm);
  size_t len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  f.last_modified.assign(buf, len);
}

}  // namespace

void force_component_walk(bool on) { g_force_walk = on; }

FileKind open_beneath(int root, const std::string& rel, bool no_symlinks, OpenFile& out) {
  if (root < 0) return FileKind::NotFound;
  const char* name = rel.empty() ? "." : rel.c_str();
  const uint64_t resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
  const bool walk = g_force_walk || g_no_openat2;
  UniqueFd path;
  if (!walk) {
    path.reset(sys_openat2(root, name, kPathFlags, resolve));
    if (!path && errno == ENOSYS) {
      g_no_openat2 = true;
      return open_beneath(root, rel, no_symlinks, out);
    }
  } else {
    path.reset(walk_path(root, rel));
  }
  if (!path) return FileKind::NotFound;
  struct stat st;
  if (::fstat(path.get(), &st) != 0) return FileKind::NotFound;
  if (S_ISDIR(st.st_mode)) return FileKind::Directory;
  if (!S_ISREG(st.st_mode)) return FileKind::NotFound;  // FIFO, socket, device, (walk: symlink)
  // Now open it for reading: the same name again, which must still be the same regular file.
  UniqueFd fd;
  if (!walk) {
    fd.reset(sys_openat2(root, name, kReadFlags, resolve));
  } else {
    char proc[64];
    std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", path.get());
    // Reopening through /proc reaches exactly the inode the walk found.
    fd.reset(::open(proc, kReadFlags));
  }
  if (!fd) return FileKind::NotFound;
  struct stat st2;
  if (::fstat(fd.get(), &st2) != 0 || !S_ISREG(st2.st_mode) || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
    return FileKind::NotFound;
  out.fd = std::move(fd);
  fill(out, st2);
  return FileKind::File;
}

FileCache& FileCache::for_this_thread() {
  static thread_local FileCache cache;
  return cache;
}

void FileCache::clear() {
  map_.clear();
  lru_.clear();
}

void FileCache::load(Node& n, int root, bool no_symlinks, const std::string& rel) {
  n.entry = Entry{};
  auto f = std::make_shared<OpenFile>();
  n.entry.kind = open_beneath(root, rel, no_symlinks, *f);
  if (n.entry.kind != FileKind::File) return;
  n.entry.file = std::move(f);
  for (const char* ext : {".br", ".gz"}) {
    auto s = std::make_shared<OpenFile>();
    if (open_beneath(root, rel + ext, no_symlinks, *s) != FileKind::File) continue;
    (ext[1] == 'b' ? n.entry.br : n.entry.gz) = std::move(s);
  }
}

void FileCache::expire(Clock::time_point now) {
  // Most recently used first: the inactive ones are at the back.
  while (!lru_.empty() && now - lru_.back().used >= inactive_) {
    map_.erase(std::string_view(lru_.back().key));
    lru_.pop_back();
  }
}

const FileCache::Entry& FileCache::get(std::string_view site, int root, bool no_symlinks, const std::string& rel,
                                       Clock::time_point now) {
  expire(now);
  // The site's length first: (site, rel) pairs never make the same key.
  key_.clear();
  const uint32_t site_len = static_cast<uint32_t>(site.size());
  key_.append(reinterpret_cast<const char*>(&site_len), sizeof site_len);
  key_.append(site);
  key_.append(rel);
  auto it = map_.find(std::string_view(key_));
  if (it != map_.end()) {
    auto node = it->second;
    if (node != lru_.begin()) lru_.splice(lru_.begin(), lru_, node);
    node->used = now;
    if (now - node->checked >= kValid || now < node->checked) {
      load(*node, root, no_symlinks, rel);
      node->checked = now;
    }
    return node->entry;
  }
  if (map_.size() >= kMaxEntries) {
    map_.erase(std::string_view(lru_.back().key));
    lru_.pop_back();
  }
  lru_.emplace_front();
  Node& n = lru_.front();
  n.key = key_;
  n.checked = n.used = now;
  load(n, root, no_symlinks, rel);
  map_.emplace(std::string_view(n.key), lru_.begin());
  return n.entry;
}

}  // namespace corral::proxy::statics
