// The slot state machine as a table: every (state, event) pair, legal or not.
#include "supervisor/worker_slot.h"

#include <optional>

#include <gtest/gtest.h>

#include "tests/unit/supervisor/fake_clock.h"

namespace corral::supervisor {
namespace {
using S = WorkerSlot::State;
using E = WorkerSlot::Event;

struct Row {
  S from;
  E event;
  std::optional<S> to;
};

const Row kTable[] = {
    {S::Stopped, E::Spawn, S::Starting},     {S::Stopped, E::Up, std::nullopt},
    {S::Stopped, E::Exit, std::nullopt},     {S::Stopped, E::Stop, S::Stopped},
    {S::Starting, E::Spawn, std::nullopt},   {S::Starting, E::Up, S::Ready},
    {S::Starting, E::Exit, S::BackingOff},   {S::Starting, E::Stop, S::Stopping},
    {S::Ready, E::Spawn, std::nullopt},      {S::Ready, E::Up, std::nullopt},
    {S::Ready, E::Exit, S::BackingOff},      {S::Ready, E::Stop, S::Stopping},
    {S::BackingOff, E::Spawn, S::Starting},  {S::BackingOff, E::Up, std::nullopt},
    {S::BackingOff, E::Exit, std::nullopt},  {S::BackingOff, E::Stop, S::Stopped},
    {S::Stopping, E::Spawn, std::nullopt},   {S::Stopping, E::Up, std::nullopt},
    {S::Stopping, E::Exit, S::Stopped},      {S::Stopping, E::Stop, S::Stopping},
};

TEST(WorkerSlot, TransitionTableCoversEveryPair) {
  EXPECT_EQ(std::size(kTable), 5u * 4u);
  for (const auto& row : kTable) {
    SCOPED_TRACE(std::string(WorkerSlot::state_name(row.from)) + " + " + std::string(WorkerSlot::event_name(row.event)));
    EXPECT_EQ(WorkerSlot::next(row.from, row.event), row.to);
  }
}

TEST(WorkerSlot, TransitionAppliesLegalMovesAndRefusesIllegalOnes) {
  FakeClock clock;
  WorkerSlot s(clock, "demo", 2, "/run/corral/demo.2.sock");
  EXPECT_EQ(s.state(), S::Stopped);
  EXPECT_FALSE(s.transition(E::Up));
  EXPECT_EQ(s.state(), S::Stopped);
  EXPECT_TRUE(s.transition(E::Spawn));
  EXPECT_TRUE(s.transition(E::Up));
  EXPECT_EQ(s.state(), S::Ready);
  EXPECT_FALSE(s.transition(E::Spawn));
  EXPECT_TRUE(s.transition(E::Exit));
  EXPECT_EQ(s.state(), S::BackingOff);
  EXPECT_TRUE(s.transition(E::Spawn));
  EXPECT_TRUE(s.transition(E::Stop));
  EXPECT_EQ(s.state(), S::Stopping);
  EXPECT_TRUE(s.transition(E::Exit));
  EXPECT_EQ(s.state(), S::Stopped);
}

TEST(WorkerSlot, NamesAndTag) {
  FakeClock clock;
  WorkerSlot s(clock, "shop", 3, "/x");
  s.generation = 7;
  EXPECT_EQ(s.tag(), "app=shop slot=3 gen=7");
  EXPECT_EQ(WorkerSlot::state_name(S::BackingOff), "backoff");
  EXPECT_EQ(WorkerSlot::state_name(S::Ready), "ready");
  EXPECT_EQ(WorkerSlot::state_name(S::Starting), "starting");
}

}  // namespace
}  // namespace corral::supervisor
