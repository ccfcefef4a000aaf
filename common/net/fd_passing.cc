#include "common/net/fd_passing.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace corral::net {

Result<void> send_message(int fd, std::string_view data, const std::vector<int>& fds) {
  if (data.size() > kMaxMessage) return fail(Errc::TooLarge, "control message too large");
  if (fds.size() > kMaxFds) return fail(Errc::TooLarge, "too many fds in one control message");
  iovec iov{const_cast<char*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> cbuf;
  if (!fds.empty()) {
    cbuf.resize(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = cbuf.data();
    msg.msg_controllen = cbuf.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    return fail_sys("sendmsg");
  }
}

Result<ReceivedMessage> recv_message(int fd) {
  ReceivedMessage out;
  // One record may be up to kMaxMessage: receive into a buffer the thread keeps, and copy
  // out only what arrived (a fresh zero-filled 1 MiB per message cost more than the rest).
  thread_local std::unique_ptr<char[]> buf(new char[kMaxMessage]);
  iovec iov{buf.get(), kMaxMessage};
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  for (;;) {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    return fail_sys("recvmsg");
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        out.fds.emplace_back(f);
      }
    }
  }
  if (n == 0 && out.fds.empty()) return fail(Errc::Closed, "control channel closed");
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return fail(Errc::Protocol, "control message truncated");
  out.data.assign(buf.get(), static_cast<size_t>(n));
  return out;
}

}  // namespace corral::net
