#pragma once
// Which file a path names now: device, inode, size and modification time. A package
// upgrade replaces a binary (a new inode, or new contents and mtime): corral-worker
// processes started from the previous file are then rolled after a supervisor upgrade
// (arbiter_upgrade.cc). Pure; any thread.
#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace corral::supervisor {

struct FileIdentity {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;

  /// Zero when unknown (the path could not be read).
  bool known() const { return ino != 0; }
  bool operator==(const FileIdentity&) const = default;
};

/// The identity of the file at `path` (following symlinks), or an unknown one.
inline FileIdentity file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

}  // namespace corral::supervisor
