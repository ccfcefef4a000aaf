#pragma once
// One request/response as the proxy handles it, independent of the frontend protocol
// (h2o's h2o_req_t, nghttpx's Downstream). A frontend session owns one and reuses it for
// each request on its connection (strings keep their capacity: no per-request allocation
// once warmed up). Loop-affine.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "proxy/dispatch/app_dispatcher.h"
#include "proxy/forwarding_headers.h"
#include "proxy/runtime.h"

namespace corral::proxy {

enum class ExchangeState {
  Idle,        ///< between requests (keep-alive wait)
  ReadingHead, ///< first byte of a head received, head incomplete
  ReadingBody, ///< head accepted, buffering the body
  Queued,      ///< waiting for a lease (AppDispatcher queue)
  Upstream,    ///< request sent or being sent to a worker; response not complete
  Responding,  ///< response complete on our side; flushing to the client
  Closing,     ///< flushing a final response, then closing
};

struct Exchange {
  using Clock = std::chrono::steady_clock;

  ExchangeState state = ExchangeState::Idle;
  std::shared_ptr<const Runtime> runtime;  ///< the snapshot this request started with
  int app = -1;                            ///< index into runtime->apps
  Lease lease;

  // Copied out of the request head (the head's buffer is reused for the body).
  std::string method, target, host, user_agent, referer;
  int version_minor = 1;
  bool keep_alive = true;
  bool had_body = false;
  std::array<char, RequestIdGenerator::kSize> request_id_buf{};
  std::string_view request_id;

  std::string upstream_head;  ///< the re-framed request head sent to the worker

  int status = 0;
  ClientFraming framing = ClientFraming::None;
  bool response_started = false;  ///< bytes of the response head are in the output buffer
  uint64_t bytes_sent = 0;        ///< response body bytes
  int slot = -1;
  int connect_attempts = 0;

  Clock::time_point t_start{}, t_queued{}, t_sent{}, t_upstream_done{};

  /// Forget the previous request (keeps string capacity).
  void reset() {
    state = ExchangeState::Idle;
    runtime.reset();
    app = -1;
    if (lease) lease.release();
    method.clear();
    target.clear();
    host.clear();
    user_agent.clear();
    referer.clear();
    version_minor = 1;
    keep_alive = true;
    had_body = false;
    request_id = {};
    upstream_head.clear();
    status = 0;
    framing = ClientFraming::None;
    response_started = false;
    bytes_sent = 0;
    slot = -1;
    connect_attempts = 0;
    t_start = t_queued = t_sent = t_upstream_done = Clock::time_point{};
  }
};

}  // namespace corral::proxy
