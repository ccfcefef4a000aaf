#pragma once
// The HTTP/1.1 UpstreamClient: sends one buffered request to a worker and streams the
// response back to an UpstreamHandler. One client per exchange, reused for each of its
// requests. A response that arrives whole is parsed from the loop's shared read buffer
// (UpstreamPool::borrow_scratch); only an incomplete remainder is kept in the client's own
// buffer. Connections come from and go back to the loop's UpstreamPool. Loop-affine; every
// callback runs on the loop thread.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/http1/parser.h"
#include "proxy/upstream/connection_client.h"

namespace corral::proxy {

class Http1Client final : public ConnectionClient {
 public:
  Http1Client(UpstreamPool& pool, UpstreamHandler& handler);
  ~Http1Client() override;

  /// Sends req.head + the body (see UpstreamClient::start). `idempotent`: a pooled
  /// connection that fails before any response byte is retried once on a fresh connection.
  void start(const UpstreamRequest& req) override;
  void abort() override;
  void pause_reading() override;
  void resume_reading() override;
  void release_idle_buffers() override;
  bool active() const { return conn_ != nullptr; }
  /// Bytes of response (head and body) received for the current request.
  uint64_t received() const { return received_; }

  void on_upstream_io(bool readable, bool writable) noexcept override;

 private:
  enum class State { Idle, Writing, ReadingHead, ReadingBody };
  void send_request() override;
  bool waiting_for_body() const override { return state_ == State::Writing && body_wait_; }
  /// Writes what it can of the request. true: all of it is out.
  bool write_request();

  void become_idle() override { state_ = State::Idle; }
  void read_response();
  /// Parses `in` (views into the shared scratch or into in_), advancing it past what was
  /// used. false: stop (done, error, or aborted; in_ has been emptied).
  bool parse(std::string_view& in);
  bool parse_buffered();  // parse(in_) and consume what was used
  void finish(bool reusable);
  void fail(const char* why);

  State state_ = State::Idle;
  std::string_view head_;
  size_t head_written_ = 0;
  uint64_t body_off_ = 0;     // body bytes written
  bool chunked_ = false;      // frame the body as chunked (a streamed body of unknown length)
  std::string frame_;         // chunk framing waiting to be written
  size_t frame_pos_ = 0;
  uint64_t chunk_left_ = 0;   // body bytes of the current chunk not written yet
  bool chunks_started_ = false, last_chunk_ = false;
  bool body_wait_ = false;    // writing waits for body bytes from the client
  bool written_all_ = false;  // the whole request is out
  bool upgrade_ = false;  // the request asks to switch protocols: a 101 hands the connection over
  http1::ResponseParser parser_;
  http1::ResponseHead resp_;
  http1::BodyDecoder decoder_;
};

}  // namespace corral::proxy
