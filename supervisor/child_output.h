#pragma once
// Capture of a child's stdout or stderr into the supervisor's log, one log line per output
// line: "[app=demo worker=2] text", at the level the line names (supervisor/output_level.h:
// corral-worker's own lines keep theirs, an app's "ERROR:root:..." is an error), plain lines
// at info. Partial lines are flushed at EOF; lines longer than kMaxLine are split, and the
// pieces after the first keep the first one's level.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/log.h"
#include "common/base/unique_fd.h"

namespace corral::ev {
class Loop;
class FdWatch;
}  // namespace corral::ev

namespace corral::supervisor {

/// Longest line logged as one; longer ones are cut into pieces of this size.
inline constexpr size_t kMaxLine = 4096;

/// Bytes in, complete lines out (without the newline). Pure; not thread-safe.
class LineSplitter {
 public:
  /// continued: this piece goes on from the previous one (a line cut at kMaxLine).
  using Sink = std::function<void(std::string_view line, bool continued)>;
  explicit LineSplitter(Sink sink) : sink_(std::move(sink)) {}
  void feed(std::string_view bytes);
  /// Emits a pending partial line, if any (EOF).
  void flush();

 private:
  void emit();
  Sink sink_;
  std::string partial_;
  bool continued_ = false;  // the pending piece continues a line already emitted
  bool cut_ = false;        // the piece being emitted is cut: the next one continues it
};

/// Reads one nonblocking pipe on the loop and logs its lines. Loop-affine. Destroying it
/// reads what is already in the pipe (the process is usually dead by then) and flushes.
class ChildOutput {
 public:
  /// Takes ownership of fd. tag is the log tag ("app=demo worker=2"); plain is the level of
  /// lines that name none.
  ChildOutput(ev::Loop& loop, UniqueFd fd, std::string tag, log::Level plain);
  ~ChildOutput();
  ChildOutput(const ChildOutput&) = delete;
  ChildOutput& operator=(const ChildOutput&) = delete;

  /// Reads everything available now; returns false once EOF was seen (or the fd is gone).
  bool drain();
  /// Logs what the pipe holds now, including a last partial line, and keeps reading. For
  /// handing the pipe to a new supervisor image (upgrade in place) with nothing half-read.
  void flush();
  /// The pipe (still owned here); -1 once gone.
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
  void on_line(std::string_view line, bool continued);
  std::string tag_;
  log::Level plain_;
  log::Level last_;  // level of the last line, for its continuations
  LineSplitter splitter_;
  std::unique_ptr<ev::FdWatch> watch_;
};

}  // namespace corral::supervisor
