#pragma once
// The HTTP/2 server side of a connection, on an nghttp2 server session (sans-I/O: bytes in
// with mem_recv, bytes out with mem_send; the socket and TLS stay in ClientConnection).
// Every stream becomes an Exchange and goes through the same pipeline as an HTTP/1.1
// request (route, body buffered, queue, dispatch, upstream HTTP/1.1); many streams of one
// connection run on different workers at once.
//
// What corral checks beyond nghttp2 (Debian 12 ships 1.52): header names and values (no
// upper case, CR, LF, NUL), connection-specific headers, TE other than "trailers", header
// list size, field count and name length, Content-Length vs the body, and (h2_request_checks.h)
// pseudo-header values that make no valid HTTP/1.1 request line or Host, :authority vs Host,
// and HEADERS on a stream id that is not new (GOAWAY, RFC 9113 §5.1.1): a malformed stream is
// reset with PROTOCOL_ERROR and never reaches a worker. The list with a test per rule:
// tests/hostile/README.md (RFC 9113). Abuse (rapid reset and server-provoked resets, CONTINUATION floods,
// SETTINGS/PING floods, empty DATA, PRIORITY, unknown frames, WINDOW_UPDATE storms) is
// counted in token buckets and answered with GOAWAY(ENHANCE_YOUR_CALM). Memory is bounded:
// request bodies by a per-connection budget enforced through flow control (no WINDOW_UPDATE
// beyond it), responses by a per-stream buffer (reading from the worker pauses above it).
//
// Loop-affine: owned by its ClientConnection; every callback runs on the loop thread.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ev/loop.h"
#include "proxy/client_connection.h"
#include "proxy/exchange.h"
#include "proxy/frontend/h2_mem.h"
#include "proxy/frontend/h2_request_checks.h"

typedef struct nghttp2_session nghttp2_session;

namespace corral::proxy {

/// Response bytes buffered per HTTP/2 stream before reading from its worker pauses.
inline constexpr size_t kH2StreamBufferLimit = 256 * 1024;

/// A token bucket: `rate` tokens per second, at most `burst`. Loop-affine.
class RateLimit {
 public:
  RateLimit(uint32_t rate, uint32_t burst) : rate_(rate), burst_(burst), tokens_(burst) {}
  /// Takes one token; false when none is left.
  bool take(std::chrono::steady_clock::time_point now);

 private:
  double rate_, burst_, tokens_;
  std::chrono::steady_clock::time_point last_{};
};

class Http2Session final : public FrontendSession {
 public:
  struct Stream;

  explicit Http2Session(ClientConnection& conn);
  ~Http2Session() override;
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  void start() override;
  void on_io(bool readable, bool writable) override;
  /// GOAWAY (last stream id = the last one processed); open streams finish, then close.
  void drain() override;
  /// Graceful GOAWAY as nghttp2 describes it: first a notice (last stream id 2^31-1) with a
  /// PING; when the PING's ACK comes back, every stream the client opened before it saw the
  /// notice has arrived, and drain() sends the final GOAWAY with the last one processed.
  /// Without an ACK, the final GOAWAY follows after kDrainAckWait.
  void announce_drain() override;

  // Called by streams (their ExchangeSink callbacks); never re-enters nghttp2 synchronously
  // beyond submit/resume calls: output is written from a zero-delay timer.
  void stream_head(Stream& s, const http1::ResponseHead& head);
  void stream_data(Stream& s);
  void stream_complete(Stream& s);
  void stream_failed(Stream& s, int status, bool retry_after);
  // RFC 8441 extended CONNECT streams (proxy/frontend/http2_tunnel.cc).
  void stream_upgrade(Stream& s, const http1::ResponseHead& head);
  void stream_tunnel_eof(Stream& s);
  void stream_tunnel_writable(Stream& s);
  void stream_tunnel_closed(Stream& s, TunnelEnd end, const char* why);
  /// A streamed body's reader took bytes: they go back to flow control.
  void stream_drained(Stream& s);

  // nghttp2 callbacks (public for the C trampolines).
  int on_begin_frame(const void* hd);
  int on_begin_headers(const void* frame);
  int on_header(const void* frame, std::string_view name, std::string_view value);
  int on_invalid_header(const void* frame, std::string_view name, std::string_view value);
  int on_frame_recv(const void* frame);
  int on_data_chunk(int32_t stream_id, std::string_view data);
  int on_stream_close(int32_t stream_id, uint32_t error_code);
  int on_frame_send(const void* frame);
  long read_response(int32_t stream_id, uint8_t* buf, size_t len, uint32_t* flags);

 private:
  void read_client();
  void write_soon();
  void flush();
  void update_interest();
  void linger();
  /// Counts frames nghttp2 drops silently (extension types); false once over the limit.
  bool scan(std::string_view bytes);
  /// Ends the connection (GOAWAY with `error_code`) and cancels its exchanges: a flood or a
  /// limit (ENHANCE_YOUR_CALM, logged at info) or a protocol violation (logged at debug).
  void end_connection(uint32_t error_code, const char* why);
  void close();
  void on_timer();
  void reset_stream(Stream& s, uint32_t error_code, const char* why);
  void request_complete(Stream& s);
  /// The X-Forwarded-* / X-Request-Id / traceparent settings of a stream's request to the worker.
  /// From a peer in trusted_proxies: the stream's X-Forwarded-For into forwarded_for_scratch()
  /// and the client it names into its exchange (before forwarding() and submit()).
  void trust_forwarded(Stream& s);
  Forwarding forwarding(const Exchange& ex, std::string_view host);
  /// An extended CONNECT (:protocol websocket) becomes an HTTP/1.1 GET with Upgrade for an
  /// http app; any other answers 501 (see http2_tunnel.cc).
  void connect_request(Stream& s);
  /// DATA on a tunnel stream: to the worker (flow control follows the tunnel's buffer).
  void tunnel_data(Stream& s, std::string_view data);
  void tunnel_client_end(Stream& s);
  /// A request head whose body is still to come: 413 (declared length), 417 (Expect), 404
  /// (no route) at once; a 100 for Expect: 100-continue; starts a streamed exchange.
  void headers_before_body(Stream& s);
  /// The checks of the pseudo-headers and Host; false: the stream was reset.
  bool valid_head(Stream& s);
  /// Routes the request and submits its exchange (body complete, or streaming).
  void start_exchange(Stream& s);
  /// The body failed (413, 408, 500): answers, or resets when a response is out.
  void body_error(Stream& s, int status);
  void respond_error(Stream& s, int status, bool retry_after = false);
  /// Submits the response head whose fields were built in the thread's field scratch (see
  /// the .cc) after a :status slot. `has_date`: the fields hold a date (else the proxy adds
  /// its own).
  void submit(Stream& s, int status, bool body, bool has_date);
  void consume(Stream& s, size_t n);
  void release_budget(Stream& s);
  /// True when nghttp2 knows stream `id` (not idle): see StreamIds::on_headers.
  bool known_stream(int32_t id);
  bool count_reset();
  bool count_flood();
  Stream* find(int32_t id);
  /// Closed streams (graveyard_) become spares, up to kSpareStreams; the rest are freed.
  void bury();

  ClientConnection& conn_;
  SessionHost& host_;
  std::shared_ptr<const Runtime> runtime_;  // the snapshot the connection started with (limits)
  H2Mem mem_;                               // nghttp2's allocator (declared first: outlives session_)
  nghttp2_session* session_ = nullptr;
  ev::Timer timer_;        // idle, header, body and send-stall deadlines (ticks while streams are open)
  ev::Timer write_timer_;  // zero-delay: flush after sink callbacks
  bool write_armed_ = false;
  std::vector<std::unique_ptr<Stream>> streams_;    // open streams (Stream::index)
  std::vector<std::unique_ptr<Stream>> graveyard_;  // closed during a callback; recycled after it
  std::vector<std::unique_ptr<Stream>> spare_;      // recycled, ready for the next stream
  http1::RequestHead req_head_;                     // the worker's head being built (capacity kept)
  Stream* block_stream_ = nullptr;                  // the stream of the last request header block
  static constexpr size_t kSpareStreams = 16;
  std::string out_;
  size_t out_pos_ = 0;
  RateLimit resets_, floods_;
  h2::StreamIds stream_ids_;  // RFC 9113 §5.1.1 (nghttp2 ignores HEADERS on old stream ids)
  uint64_t body_budget_ = 0, body_used_ = 0;  // request body bytes consumed (window opened) and not yet freed
  std::vector<std::pair<int32_t, size_t>> unconsumed_;  // waiting for body budget
  int continuations_ = 0;
  uint64_t header_block_bytes_ = 0;
  Exchange::Clock::time_point idle_since_{}, write_progress_{}, flush_now_{};
  bool closed_ = false;
  bool going_away_ = false;
  bool drain_noticed_ = false;  // announce_drain() sent the notice; drain() follows
  std::chrono::steady_clock::time_point drain_noticed_at_{};
  bool terminated_ = false;
  bool in_io_ = false;
  bool lingering_ = false;
  Exchange::Clock::time_point linger_until_{};
  // Frame-header scanner state (starts after the 24-byte client preface).
  uint8_t scan_hd_[9] = {};
  size_t scan_have_ = 0;
  uint64_t scan_skip_ = 24;
};

/// The HTTP/2 session for a connection whose protocol is h2 (ALPN or prior knowledge).
std::unique_ptr<FrontendSession> make_http2_session(ClientConnection& conn);

}  // namespace corral::proxy
