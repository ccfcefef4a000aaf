#include "supervisor/worker_slot.h"

#include "common/ev/loop.h"
#include "supervisor/child_output.h"
#include "supervisor/readiness_probe.h"

namespace corral::supervisor {

std::optional<WorkerSlot::State> WorkerSlot::next(State s, Event e) {
  using S = State;
  using E = Event;
  switch (s) {
    case S::Stopped:
      if (e == E::Spawn) return S::Starting;
      if (e == E::Stop || e == E::Drain) return S::Stopped;
      return std::nullopt;
    case S::Starting:
      if (e == E::Up) return S::Ready;
      if (e == E::Exit) return S::BackingOff;
      if (e == E::Stop || e == E::Drain) return S::Stopping;  // not serving yet: nothing to drain
      return std::nullopt;
    case S::Ready:
      if (e == E::Exit) return S::BackingOff;
      if (e == E::Drain) return S::Draining;
      if (e == E::Stop) return S::Stopping;
      return std::nullopt;
    case S::BackingOff:
      if (e == E::Spawn) return S::Starting;
      if (e == E::Stop || e == E::Drain) return S::Stopped;
      return std::nullopt;
    case S::Draining:
      if (e == E::Exit) return S::Stopped;
      if (e == E::Stop) return S::Stopping;
      if (e == E::Drain) return S::Draining;
      return std::nullopt;
    case S::Stopping:
      if (e == E::Exit) return S::Stopped;
      if (e == E::Stop || e == E::Drain) return S::Stopping;
      return std::nullopt;
  }
  return std::nullopt;
}

std::string_view WorkerSlot::state_name(State s) {
  switch (s) {
    case State::Stopped: return "stopped";
    case State::Starting: return "starting";
    case State::Ready: return "ready";
    case State::BackingOff: return "backoff";
    case State::Draining: return "draining";
    case State::Stopping: return "stopping";
  }
  return "?";
}

std::string_view WorkerSlot::event_name(Event e) {
  switch (e) {
    case Event::Spawn: return "spawn";
    case Event::Up: return "up";
    case Event::Exit: return "exit";
    case Event::Drain: return "drain";
    case Event::Stop: return "stop";
  }
  return "?";
}

WorkerSlot::WorkerSlot(const Clock& clock, std::shared_ptr<const conf::App> config, uint64_t app_generation, int index,
                       std::string socket_path)
    : backoff(clock),
      config_(std::move(config)),
      app_generation_(app_generation),
      index_(index),
      socket_path_(std::move(socket_path)) {}

WorkerSlot::~WorkerSlot() = default;

bool WorkerSlot::transition(Event e) {
  auto n = next(state_, e);
  if (!n) return false;
  state_ = *n;
  return true;
}

std::string WorkerSlot::tag() const {
  return "app=" + app() + " worker=" + std::to_string(index_) + " gen=" + std::to_string(app_generation_);
}

}  // namespace corral::supervisor
