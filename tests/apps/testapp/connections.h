#pragma once
// Registry of open client connections, so SIGTERM can stop idle keep-alive connections
// at once while busy ones finish their request first.
//
// Thread-safe.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

namespace testapp {

class Connections {
 public:
  /// Registers a connection (idle). Returns false when stopping: close it at once.
  bool add(int fd);
  /// Marks the connection idle (between requests). Returns false when stopping.
  bool set_idle(int fd);
  /// Marks the connection busy (a request has started arriving).
  void set_busy(int fd);
  /// Forgets the connection (the caller then closes the fd).
  void remove(int fd);
  bool stopping() const;
  /// Starts the graceful stop: idle connections are shut down for reading, which wakes
  /// their threads; busy ones close after their current response.
  void stop();
  /// Waits until no connection is left; false on timeout.
  bool wait_empty(std::chrono::milliseconds timeout);

 private:
  mutable std::mutex mu_;
  std::condition_variable empty_;
  std::map<int, bool> idle_;
  bool stopping_ = false;
};

}  // namespace testapp
