#include "common/control/channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace corral::control {
namespace {

// A peer that never reads: the sender's queue stops at kMaxQueued and send() says so,
// instead of growing until the supervisor runs out of memory.
TEST(ChannelTest, QueueTowardsAPeerThatDoesNotReadIsBounded) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd peer(sv[1]);
  ev::Loop loop;
  Channel ch(loop, UniqueFd(sv[0]), [](Message&&, std::vector<UniqueFd>&&) {}, [](const Error&) {});
  const WorkerFigures big{std::string(32 * 1024, 'x')};
  int sent = 0;
  while (ch.send(big) && sent < 10000) ++sent;
  EXPECT_LT(sent, 10000) << "send() never refused";
  EXPECT_FALSE(ch.closed());
  EXPECT_GT(ch.queued(), 0u);
  EXPECT_LE(ch.queued_bytes(), Channel::kMaxQueued);
  EXPECT_GT(ch.queued_bytes(), Channel::kMaxQueued - 64 * 1024);
}

}  // namespace
}  // namespace corral::control
