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
    {S::Stopped, E::Exit, std::nullopt},     {S::Stopped, E::Drain, S::Stopped},
    {S::Stopped, E::Stop, S::Stopped},
    {S::Starting, E::Spawn, std::nullopt},   {S::Starting, E::Up, S::Ready},
    {S::Starting, E::Exit, S::BackingOff},   {S::Starting, E::Drain, S::Stopping},
    {S::Starting, E::Stop, S::Stopping},
    {S::Ready, E::Spawn, std::nullopt},      {S::Ready, E::Up, std::nullopt},
    {S::Ready, E::Exit, S::BackingOff},      {S::Ready, E::Drain, S::Draining},
    {S::Ready, E::Stop, S::Stopping},
    {S::BackingOff, E::Spawn, S::Starting},  {S::BackingOff, E::Up, std::nullopt},
    {S::BackingOff, E::Exit, std::nullopt},  {S::BackingOff, E::Drain, S::Stopped},
    {S::BackingOff, E::Stop, S::Stopped},
    {S::Draining, E::Spawn, std::nullopt},   {S::Draining, E::Up, std::nullopt},
    {S::Draining, E::Exit, S::Stopped},      {S::Draining, E::Drain, S::Draining},
    {S::Draining, E::Stop, S::Stopping},
    {S::Stopping, E::Spawn, std::nullopt},   {S::Stopping, E::Up, std::nullopt},
    {S::Stopping, E::Exit, S::Stopped},      {S::Stopping, E::Drain, S::Stopping},
    {S::Stopping, E::Stop, S::Stopping},
};

TEST(WorkerSlot, TransitionTableCoversEveryPair) {
  EXPECT_EQ(std::size(kTable), 6u * 5u);
  for (const auto& row : kTable) {
    SCOPED_TRACE(std::string(WorkerSlot::state_name(row.from)) + " + " + std::string(WorkerSlot::event_name(row.event)));
    EXPECT_EQ(WorkerSlot::next(row.from, row.event), row.to);
  }
}

std::shared_ptr<const conf::App> app_named(const std::string& name) {
  auto a = std::make_shared<conf::App>();
  a->name = name;
  return a;
}

TEST(WorkerSlot, TransitionAppliesLegalMovesAndRefusesIllegalOnes) {
  FakeClock clock;
  WorkerSlot s(clock, app_named("demo"), 1, 2, "/run/corral/demo.2.sock");
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
  EXPECT_TRUE(s.transition(E::Up));
  EXPECT_TRUE(s.transition(E::Drain));
  EXPECT_EQ(s.state(), S::Draining);
  EXPECT_FALSE(s.transition(E::Up));
  EXPECT_TRUE(s.transition(E::Stop));
  EXPECT_EQ(s.state(), S::Stopping);
  EXPECT_TRUE(s.transition(E::Exit));
  EXPECT_EQ(s.state(), S::Stopped);
}

TEST(WorkerSlot, NamesAndTag) {
  FakeClock clock;
  WorkerSlot s(clock, app_named("shop"), 7, 3, "/x");
  EXPECT_EQ(s.tag(), "app=shop worker=3 gen=7");
  EXPECT_FALSE(s.retiring());
  s.retire_reason = "reload";
  EXPECT_TRUE(s.retiring());
  EXPECT_EQ(WorkerSlot::state_name(S::BackingOff), "backoff");
  EXPECT_EQ(WorkerSlot::state_name(S::Draining), "draining");
  EXPECT_EQ(WorkerSlot::state_name(S::Starting), "starting");
}

}  // namespace
}  // namespace corral::supervisor
