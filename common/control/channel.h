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
  /// caller keeps its own. Returns false when the channel is already closed.
  bool send(const Message& m, const std::vector<int>& fds = {});
  bool closed() const { return !fd_; }

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
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace corral::control
