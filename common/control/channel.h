#pragma once
// One end of the control channel (a SEQPACKET socketpair) driven by an ev::Loop.
// Loop-affine: construct, send and destroy on the loop's thread.
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/control/messages.h"
#include "common/ev/loop.h"

namespace corral::control {

class Channel {
 public:
  /// Fires for every decoded message, with the fds that came with it (owned by the callee).
  using OnMessage = std::function<void(Message&&, std::vector<UniqueFd>&&)>;
  /// Fires once when the peer closes the channel or sends something undecodable.
  using OnClose = std::function<void(const Error&)>;

  /// Takes ownership of fd (made nonblocking).
  Channel(ev::Loop& loop, UniqueFd fd, OnMessage on_message, OnClose on_close);
  ~Channel();

  /// Queues a message; written as soon as the socket accepts it. fds are dup'ed, so the
  /// caller keeps its own. Returns false when the channel is already closed, or when the
  /// peer has stopped reading and kMaxQueued bytes already wait (the message is dropped:
  /// the queue never grows without bound; the owner decides what a stuck peer means).
  bool send(const Message& m, const std::vector<int>& fds = {});
  bool closed() const { return !fd_; }
  /// The socket (still owned here); -1 once closed. For handing it to a new supervisor image.
  int fd() const { return fd_.get(); }
  /// Bytes queued because the socket did not take them (the peer is not reading).
  size_t queued_bytes() const { return queued_bytes_; }
  /// Messages queued, not yet written.
  size_t queued() const { return out_.size(); }

  /// Above this many queued bytes send() refuses (16 MiB: far more than any burst of
  /// messages between two reads of a live peer).
  static constexpr size_t kMaxQueued = 16u << 20;

 private:
  void on_io(bool readable, bool writable);
  void flush();
  void close_with(const Error& e);

  struct Pending {
    std::string bytes;
    std::vector<UniqueFd> fds;
  };
  ev::Loop& loop_;
  UniqueFd fd_;
  OnMessage on_message_;
  OnClose on_close_;
  std::unique_ptr<ev::FdWatch> watch_;
  std::deque<Pending> out_;
  size_t queued_bytes_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace corral::control
