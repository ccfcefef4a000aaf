#pragma once
// TempRuntime: one short /tmp/crl-XXXXXX directory per test (Unix socket paths must fit in
// 108 bytes). It holds the config, the logs, the notify socket and runtime_dir ("r/").
// Removed on destruction unless keep() was called (the fixture keeps it on failure).
//
// Not thread-safe; owned by one test.
#include <string>

namespace corral::itest {

class TempRuntime {
 public:
  /// Creates the directory; aborts the test binary when /tmp is unusable.
  TempRuntime();
  ~TempRuntime();
  TempRuntime(const TempRuntime&) = delete;
  TempRuntime& operator=(const TempRuntime&) = delete;

  const std::string& path() const { return path_; }
  /// The supervisor's runtime_dir (worker sockets, control.sock).
  std::string runtime_dir() const { return path_ + "/r"; }
  /// A path inside the directory.
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Writes `content` to file(name) and returns its path. Empty string on failure.
  std::string write_file(const std::string& name, const std::string& content) const;
  /// Keeps the directory after the test and prints its path on stderr.
  void keep();

 private:
  std::string path_;
  bool keep_ = false;
};

/// Reads a whole file; empty when missing.
std::string read_file(const std::string& path);

}  // namespace corral::itest
