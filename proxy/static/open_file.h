#pragma once
// Opening files below a static route's folder without ever leaving it, and the per-thread
// open-file cache (nginx's open_file_cache).
//
// open_beneath(): openat2(2) relative to an O_PATH descriptor of the folder with
// RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS (plus RESOLVE_NO_SYMLINKS for follow_symlinks =
// "off"): the kernel refuses any resolution that would leave the folder, including through
// a symlink or a ".." inside a symlink's target; absolute symlinks are refused too. The name
// is first opened O_PATH (opens nothing: no FIFO blocks, no device driver runs) and
// fstat'ed; only a regular file is then opened for reading (O_NONBLOCK | O_NOCTTY), and it
// must be the same inode. Without openat2 (ENOSYS: kernels before 5.6, or a seccomp filter)
// the path is walked one component at a time with O_NOFOLLOW, and every symlink is refused.
//
// FileCache: one per loop thread, keyed by the site (what identifies its files: the folder's
// device and inode, and the symlink setting; a reload that keeps the folder keeps the
// entries) and the path below it. An entry (the file, its .br and .gz siblings, or "not
// found" / "a folder") is used for up to one second, then looked up again: a replaced or
// rewritten file is served new (new ETag) within a second. An entry nobody asked for during
// the inactive period (nginx's open_file_cache inactive=) is dropped, which closes its
// files: a deleted file's disk space comes back, and the entries of a folder no route
// serves any more go. Bounded (LRU). Open files are shared_ptrs, so a response being sent
// keeps its file open when the entry is replaced or evicted.
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/base/unique_fd.h"

namespace corral::proxy::statics {

/// An open regular file and what its responses say about it.
struct OpenFile {
  UniqueFd fd;
  uint64_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  int64_t mtime = 0;          ///< seconds
  int64_t mtime_nsec = 0;
  std::string etag;           ///< nginx's: "\"<mtime hex>-<size hex>\""
  std::string last_modified;  ///< IMF-fixdate of mtime
};

enum class FileKind { NotFound, File, Directory };

/// Opens `rel` ("" = the folder itself) below `root` (an O_PATH folder descriptor). File:
/// `out` holds the open file; Directory: nothing is kept open. Never blocks, never opens
/// anything outside `root` or anything but a regular file.
FileKind open_beneath(int root, const std::string& rel, bool no_symlinks, OpenFile& out);

/// Tests: pretend openat2 is missing (the component walk is used).
void force_component_walk(bool on);

class FileCache {
 public:
  using Clock = std::chrono::steady_clock;
  /// What a path below a route's folder is.
  struct Entry {
    FileKind kind = FileKind::NotFound;
    std::shared_ptr<const OpenFile> file, br, gz;  ///< br/gz: the precompressed siblings
  };
  static constexpr size_t kMaxEntries = 1024;
  static constexpr std::chrono::milliseconds kValid{1000};
  /// How long an entry stays without being asked for.
  static constexpr std::chrono::milliseconds kInactive{10'000};

  explicit FileCache(std::chrono::milliseconds inactive = kInactive) : inactive_(inactive) {}

  /// This thread's cache.
  static FileCache& for_this_thread();

  /// The entry for `rel` below the folder of the site whose files `site` identifies (its
  /// StaticSite::cache_key(); open descriptor `root`), looked up again when older than
  /// kValid. Drops the inactive entries first (expire). The reference is valid until the
  /// next call.
  const Entry& get(std::string_view site, int root, bool no_symlinks, const std::string& rel, Clock::time_point now);
  /// Drops the entries not asked for since `now` - inactive (their files close unless a
  /// response still sends them). The loop thread also calls it from a timer, so that idle
  /// entries go without traffic.
  void expire(Clock::time_point now);
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  std::chrono::milliseconds inactive() const { return inactive_; }
  void clear();

 private:
  struct Node {
    std::string key;
    Entry entry;
    Clock::time_point checked;  // last looked up on disk
    Clock::time_point used;     // last asked for: the list is in this order
  };
  void load(Node& n, int root, bool no_symlinks, const std::string& rel);
  std::list<Node> lru_;  // most recent first
  std::unordered_map<std::string_view, std::list<Node>::iterator> map_;  // keys view Node::key
  std::string key_;  // lookup scratch
  std::chrono::milliseconds inactive_;
};

}  // namespace corral::proxy::statics
