#include "proxy/frontend/http2_session.h"

#include <nghttp2/nghttp2.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/base/cached_utc.h"
#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/http1/serializer.h"
#include "proxy/request_body.h"
#include "proxy/forwarding_headers.h"
#include "proxy/upgrade.h"

namespace corral::proxy {
namespace {

using Clock = Exchange::Clock;
using namespace std::chrono_literals;

constexpr size_t kReadSize = 16 * 1024;
constexpr size_t kOutHighWater = 64 * 1024;     // stop asking nghttp2 for frames above this
constexpr int32_t kStreamWindow = 256 * 1024;   // per-stream receive window
constexpr int kMaxContinuations = 32;           // per header block; more is a flood (CVE-2024-28182)
constexpr uint32_t kBurstFactor = 10;

Http2Session* self(void* p) { return static_cast<Http2Session*>(p); }
std::string_view sv(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

bool has_ctl(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n' || c == '\0') return true;
  return false;
}

bool has_upper(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return true;
  return false;
}

bool connection_specific(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" ||
         n == "upgrade";
}

}  // namespace

// ---- RateLimit ----------------------------------------------------------------------------

bool RateLimit::take(Clock::time_point now) {
  if (last_ != Clock::time_point{}) {
    double dt = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + dt * rate_);
  }
  last_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

// ---- Stream -------------------------------------------------------------------------------

struct Http2Session::Stream final : ExchangeSink, BodyWriter {
  Stream(Http2Session& s, int32_t stream_id) : session(s), id(stream_id), ex(s.host_, *this) {}

  /// Makes a closed stream ready to carry another one (strings, the exchange and its
  /// upstream client keep their capacity: no allocation per stream on a busy connection).
  void recycle() {
    ex.reset();
    ex.release_idle_memory();
    body.close();
    body.shrink();
    streaming = false;
    unacked = acked_release = 0;
    method.clear();
    protocol.clear();
    tunnel = tunnel_eof_pending = false;
    tunnel_unconsumed = 0;
    std::string().swap(tunnel_pending);
    path.clear();
    scheme.clear();
    authority.clear();
    host_header.clear();
    cookie.clear();
    if (field_bytes.capacity() > kFieldsKeepCapacity) std::string().swap(field_bytes);
    else field_bytes.clear();
    fields.clear();
    header_bytes = 0;
    header_count = 0;
    content_length = -1;
    headers_done = end_stream = rejected = too_large = discard_body = false;
    t_begin = body_progress = send_progress = Clock::time_point{};
    budget = 0;
    if (resp.capacity() > kRespKeepCapacity) std::string().swap(resp);
    else resp.clear();
    resp_pos = 0;
    submitted = resp_complete = deferred = false;
    file.reset();
    file_off = file_left = 0;
  }
  static constexpr size_t kRespKeepCapacity = 16 * 1024;
  static constexpr size_t kFieldsKeepCapacity = 8 * 1024;

  Http2Session& session;
  int32_t id;
  size_t index = 0;  // position in streams_
  Exchange ex;
  RequestBody body;
  bool streaming = false;      // the body streams to the worker (request_buffering = false)
  uint64_t unacked = 0;        // streamed body bytes received and not yet given back to flow control
  uint64_t acked_release = 0;  // body.released() already given back
  // The request as received.
  std::string method, path, scheme, authority, host_header, cookie;
  std::string protocol;  // :protocol (extended CONNECT)
  // An extended CONNECT stream: its DATA goes to the tunnel; bytes received before the
  // worker switched wait in `tunnel_pending`; END_STREAM before that waits in tunnel_eof_pending.
  bool tunnel = false, tunnel_eof_pending = false;
  size_t tunnel_unconsumed = 0;  // DATA bytes not given back to flow control (worker buffer full)
  std::string tunnel_pending;    // DATA before the worker switched (bounded by the stream window)
  // Regular request headers, stored flat (one buffer, offsets): no allocation per field.
  struct FieldRef {
    uint32_t name_off, name_len, value_off, value_len;
  };
  std::string field_bytes;
  std::vector<FieldRef> fields;
  void add_field(std::string_view n, std::string_view v) {
    FieldRef r{static_cast<uint32_t>(field_bytes.size()), static_cast<uint32_t>(n.size()), 0,
               static_cast<uint32_t>(v.size())};
    field_bytes.append(n);
    r.value_off = static_cast<uint32_t>(field_bytes.size());
    field_bytes.append(v);
    fields.push_back(r);
  }
  std::string_view field_name(const FieldRef& r) const { return {field_bytes.data() + r.name_off, r.name_len}; }
  std::string_view field_value(const FieldRef& r) const { return {field_bytes.data() + r.value_off, r.value_len}; }
  uint64_t header_bytes = 0;
  size_t header_count = 0;
  int64_t content_length = -1;
  bool headers_done = false, end_stream = false, rejected = false, too_large = false, discard_body = false;
  Clock::time_point t_begin{}, body_progress{};
  uint64_t budget = 0;  // request body bytes this stream holds against the connection budget
  // The response.
  std::string resp;
  size_t resp_pos = 0;
  bool submitted = false, resp_complete = false, deferred = false;
  Clock::time_point send_progress{};
  // A static file body: read into nghttp2's DATA frames as flow control allows.
  std::shared_ptr<const statics::OpenFile> file;
  uint64_t file_off = 0, file_left = 0;

  void on_response_head(const http1::ResponseHead& head) noexcept override { session.stream_head(*this, head); }
  void on_response_body(std::string_view data) noexcept override {
    resp.append(data);
    if (resp.size() - resp_pos > kH2StreamBufferLimit) ex.pause_upstream();
    session.stream_data(*this);
  }
  void on_response_flush() noexcept override { session.stream_data(*this); }
  void on_response_complete() noexcept override { session.stream_complete(*this); }
  void on_response_file(std::shared_ptr<const statics::OpenFile> f, uint64_t offset,
                        uint64_t length) noexcept override {
    file = std::move(f);
    file_off = offset;
    file_left = length;
    session.stream_data(*this);
  }
  void on_exchange_failed(int status, bool retry_after) noexcept override {
    session.stream_failed(*this, status, retry_after);
  }
  void on_upgrade(const http1::ResponseHead& head) noexcept override { session.stream_upgrade(*this, head); }
  void on_tunnel_data(std::string_view data) noexcept override { on_response_body(data); }
  void on_tunnel_eof() noexcept override { session.stream_tunnel_eof(*this); }
  void on_tunnel_writable() noexcept override { session.stream_tunnel_writable(*this); }
  void on_tunnel_closed(TunnelEnd end, const char* why) noexcept override {
    session.stream_tunnel_closed(*this, end, why);
  }
  void on_body_drained() noexcept override { session.stream_drained(*this); }
};

// ---- nghttp2 trampolines ------------------------------------------------------------------

namespace {

int cb_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* u) { return self(u)->on_begin_frame(hd); }
int cb_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* u) { return self(u)->on_begin_headers(f); }
int cb_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
              uint8_t, void* u) {
  return self(u)->on_header(f, sv(n, nl), sv(v, vl));
}
int cb_invalid_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
                      size_t vl, uint8_t, void* u) {
  return self(u)->on_invalid_header(f, sv(n, nl), sv(v, vl));
}
int cb_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* u) { return self(u)->on_frame_recv(f); }
int cb_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
  return self(u)->on_data_chunk(id, sv(d, n));
}
int cb_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* u) { return self(u)->on_stream_close(id, code); }
int cb_frame_send(nghttp2_session*, const nghttp2_frame* f, void* u) { return self(u)->on_frame_send(f); }
ssize_t cb_read(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source*,
                void* u) {
  return self(u)->read_response(id, buf, len, flags);
}

nghttp2_session_callbacks* callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_frame_callback(c, cb_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(c, cb_header);
    // Installed so that nghttp2 never drops an invalid field silently: it resets the stream.
    nghttp2_session_callbacks_set_on_invalid_header_callback(c, cb_invalid_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, cb_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, cb_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, cb_frame_send);
    return c;
  }();
  return cbs;
}

}  // namespace

// ---- Session ------------------------------------------------------------------------------

Http2Session::Http2Session(ClientConnection& conn)
    : conn_(conn),
      host_(conn.host()),
      runtime_(conn.host().runtime()),
      timer_(host_.loop(), [this] { on_timer(); }),
      write_timer_(host_.loop(), [this] {
        write_armed_ = false;
        if (!closed_) flush();
        bury();
      }),
      resets_(runtime_->proxy.h2_reset_rate, runtime_->proxy.h2_reset_rate * kBurstFactor),
      floods_(runtime_->proxy.h2_flood_rate, runtime_->proxy.h2_flood_rate * kBurstFactor) {
  const auto& p = runtime_->proxy;
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);   // body memory is bounded by consume()
  nghttp2_option_set_max_settings(opt, 32);            // entries per SETTINGS frame
  nghttp2_option_set_max_outbound_ack(opt, 10000);     // PING/SETTINGS acks not read by the client
  // nghttp2's own limiters stay as a backstop, looser than corral's (which answer first, with
  // ENHANCE_YOUR_CALM, and also count what nghttp2 does not).
  nghttp2_option_set_max_continuations(opt, 2 * kMaxContinuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, 2ull * p.h2_reset_rate * kBurstFactor, 2ull * p.h2_reset_rate);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  nghttp2_mem mem{&mem_, &H2Mem::on_malloc, &H2Mem::on_free, &H2Mem::on_calloc, &H2Mem::on_realloc};
  nghttp2_session_server_new3(&session_, callbacks(), this, opt, &mem);
  nghttp2_option_del(opt);
  body_budget_ = std::max<uint64_t>(p.max_body_size, 4u << 20);
  if (body_budget_ > (256u << 20)) body_budget_ = 256u << 20;
}

Http2Session::~Http2Session() {
  // Exchanges first (they cancel their upstream requests), then the nghttp2 session.
  streams_.clear();
  graveyard_.clear();
  spare_.clear();
  nghttp2_session_del(session_);
}

void Http2Session::start() {
  const auto& p = runtime_->proxy;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, p.h2_max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(p.max_header_size)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // RFC 8441: WebSockets over HTTP/2 (extended CONNECT with :protocol); nghttp2 accepts
      // and checks :protocol only once this local setting is acknowledged.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  // The connection window covers the body budget (streams are limited by their own windows).
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(std::min<uint64_t>(body_budget_, (1u << 31) - 1)));
  idle_since_ = host_.loop().now();
  write_progress_ = idle_since_;
  timer_.arm(1s);
  if (host_.draining()) drain();
  read_client();  // bytes read while choosing the protocol
  flush();
}

void Http2Session::on_io(bool readable, bool writable) {
  if (closed_) return;
  if (lingering_) {
    char buf[kReadSize];
    for (int i = 0; i < 16; ++i) {
      ssize_t n = conn_.read(buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close();
        return;
      }
      if (n < 0) return;
    }
    return;
  }
  in_io_ = true;
  if (readable) read_client();
  if (!closed_ && (writable || readable)) flush();
  in_io_ = false;
  bury();
}

void Http2Session::read_client() {
  // Several reads per wake-up; bounded so one connection cannot starve the loop.
  for (int round = 0; round < 4 && !closed_ && !terminated_; ++round) {
    char buf[kReadSize];
    ssize_t n = conn_.read(buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN) return;
      close();
      return;
    }
    if (n == 0) {
      close();  // the client is gone: its streams are cancelled (workers freed)
      return;
    }
    if (!scan(std::string_view(buf, static_cast<size_t>(n)))) return;
    ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(n));
    if (rv < 0) {
      if (!terminated_) {
        uint32_t code = rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
        if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
          close();
          return;
        }
        end_connection(code, nghttp2_strerror(static_cast<int>(rv)));
      }
      return;
    }
    if (static_cast<size_t>(n) < sizeof buf) return;
  }
}

bool Http2Session::scan(std::string_view bytes) {
  // Frame headers seen on the wire, before nghttp2: extension frame types are dropped by
  // nghttp2 without any callback, so they are counted here.
  while (!bytes.empty()) {
    if (scan_skip_ > 0) {
      size_t k = std::min<uint64_t>(scan_skip_, bytes.size());
      scan_skip_ -= k;
      bytes.remove_prefix(k);
      continue;
    }
    size_t k = std::min(bytes.size(), sizeof scan_hd_ - scan_have_);
    std::memcpy(scan_hd_ + scan_have_, bytes.data(), k);
    scan_have_ += k;
    bytes.remove_prefix(k);
    if (scan_have_ < sizeof scan_hd_) break;
    scan_have_ = 0;
    uint32_t len = (uint32_t(scan_hd_[0]) << 16) | (uint32_t(scan_hd_[1]) << 8) | scan_hd_[2];
    scan_skip_ = len;
    if (scan_hd_[3] > NGHTTP2_CONTINUATION && !count_flood()) return false;
  }
  return true;
}

void Http2Session::write_soon() {
  if (closed_ || in_io_ || write_armed_) return;
  write_armed_ = true;
  write_timer_.arm(0ms);
}

void Http2Session::flush() {
  if (closed_) return;
  // Every frame nghttp2 has ready (all streams, up to the high-water mark) is gathered first
  // and written with one write(): one TLS record and one syscall per loop iteration instead
  // of one per frame (a small response is HEADERS + DATA, often with a WINDOW_UPDATE).
  flush_now_ = host_.loop().now();  // one clock read per flush (progress stamps below)
  bool blocked = false;
  while (!blocked) {
    while (out_.size() - out_pos_ < kOutHighWater) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        close();
        return;
      }
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (out_pos_ == out_.size()) break;  // nothing to write
    while (out_pos_ < out_.size()) {
      ssize_t n = conn_.write(out_.data() + out_pos_, out_.size() - out_pos_);
      if (n < 0) {
        if (errno != EAGAIN) {
          close();
          return;
        }
        blocked = true;
        break;
      }
      out_pos_ += static_cast<size_t>(n);
      write_progress_ = flush_now_;
    }
    if (out_pos_ == out_.size()) {
      out_.clear();
      out_pos_ = 0;
    }
  }
  if (closed_) return;
  if (out_pos_ == out_.size() && !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
    if (terminated_) {
      linger();  // the GOAWAY is out; let the client read it before the socket goes
      return;
    }
    close();  // GOAWAY sent and every stream done
    return;
  }
  if (going_away_ && streams_.empty() && out_pos_ == out_.size()) {
    close();
    return;
  }
  update_interest();
}

void Http2Session::linger() {
  if (lingering_) return;
  lingering_ = true;
  conn_.shutdown_write();
  // Closing with unread input would reset the connection and could destroy the GOAWAY in
  // flight: read and discard for up to a second, then close.
  linger_until_ = host_.loop().now() + 1s;
  timer_.arm(100ms);
  conn_.want(true, false);
}

void Http2Session::update_interest() {
  if (closed_) return;
  bool want_write = out_pos_ < out_.size();
  // Stop reading while a lot of output is pending (the client is not reading its responses).
  bool want_read = !terminated_ && out_.size() - out_pos_ < 4 * kOutHighWater;
  conn_.want(want_read, want_write);
}

void Http2Session::end_connection(uint32_t error_code, const char* why) {
  if (terminated_) return;
  terminated_ = true;
  // A flood is worth an operator's eye; a malformed frame is the client's bug (debug).
  if (error_code == NGHTTP2_ENHANCE_YOUR_CALM) {
    CORRAL_LOG(Info, "h2") << "closing connection from " << conn_.client_ip() << ": " << why;
  } else {
    CORRAL_LOG(Debug, "h2") << "closing connection from " << conn_.client_ip() << ": " << why;
  }
  nghttp2_session_terminate_session(session_, error_code);
  // Nothing of this connection reaches a worker any more.
  for (auto& s : streams_) s->ex.cancel();
  write_soon();
}

void Http2Session::drain() {
  if (going_away_ || closed_) return;
  going_away_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  if (in_io_) return;
  flush();
}

namespace {
// The PING sent with the GOAWAY notice (its ACK carries the same 8 bytes).
constexpr uint8_t kDrainPing[8] = {'c', 'o', 'r', 'r', 'a', 'l', 'g', 'a'};
// A client that never answers the PING still gets the final GOAWAY after this long.
constexpr std::chrono::milliseconds kDrainAckWait{1000};
}  // namespace

void Http2Session::announce_drain() {
  if (going_away_ || drain_noticed_ || closed_ || terminated_) return;
  drain_noticed_ = true;
  drain_noticed_at_ = host_.loop().now();
  nghttp2_submit_shutdown_notice(session_);
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, kDrainPing);
  if (in_io_) return;
  flush();
}

void Http2Session::close() {
  if (closed_) return;
  closed_ = true;
  timer_.cancel();
  write_timer_.cancel();
  write_armed_ = false;
  // The client is gone (or the connection failed): its queued and in-flight requests are
  // cancelled and logged, like a reset stream's.
  for (auto& s : streams_) s->ex.client_gone(conn_.client_ip());
  conn_.close();
}

Http2Session::Stream* Http2Session::find(int32_t id) {
  // nghttp2 keeps a map of its streams anyway; ours carry their Stream as user data from
  // on_begin_headers until on_stream_close (which clears it).
  return id > 0 ? static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id)) : nullptr;
}

void Http2Session::bury() {
  while (!graveyard_.empty()) {
    std::unique_ptr<Stream> s = std::move(graveyard_.back());
    graveyard_.pop_back();
    if (closed_ || spare_.size() >= kSpareStreams) continue;  // destroyed
    s->recycle();
    spare_.push_back(std::move(s));
  }
}

bool Http2Session::known_stream(int32_t id) {
  // Open, half-closed, or closed and still remembered by nghttp2, which then answers a
  // HEADERS frame itself (STREAM_CLOSED after the client's END_STREAM, ignored after our
  // RST_STREAM). An idle stream (named only by PRIORITY) is not known.
  nghttp2_stream* st = nghttp2_session_find_stream(session_, id);
  return st && nghttp2_stream_get_state(st) != NGHTTP2_STREAM_STATE_IDLE;
}

bool Http2Session::count_reset() {
  if (resets_.take(host_.loop().now())) return true;
  end_connection(NGHTTP2_ENHANCE_YOUR_CALM, "stream reset rate exceeded");
  return false;
}

bool Http2Session::count_flood() {
  if (floods_.take(host_.loop().now())) return true;
  end_connection(NGHTTP2_ENHANCE_YOUR_CALM, "control frame flood");
  return false;
}

// ---- receiving ----------------------------------------------------------------------------

int Http2Session::on_begin_frame(const void* p) {
  const auto* hd = static_cast<const nghttp2_frame_hd*>(p);
  if (terminated_) return NGHTTP2_ERR_CALLBACK_FAILURE;
  switch (hd->type) {
    case NGHTTP2_HEADERS:
      continuations_ = 0;
      header_block_bytes_ = hd->length;
      // RFC 9113 §5.1.1: a HEADERS frame on a stream id that is neither new nor known is a
      // connection error; nghttp2 ignores it (and answers 0 and even ids itself).
      if (hd->stream_id > 0 && hd->stream_id % 2 == 1 && !going_away_ &&
          !stream_ids_.on_headers(hd->stream_id, known_stream(hd->stream_id))) {
        end_connection(NGHTTP2_PROTOCOL_ERROR, "HEADERS on a stream id that is not new");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      break;
    case NGHTTP2_CONTINUATION:
      header_block_bytes_ += hd->length;
      // A header block far beyond the decoded limit (HPACK only shrinks) is a flood.
      if (++continuations_ > kMaxContinuations || header_block_bytes_ > 4 * runtime_->proxy.max_header_size + 65536) {
        end_connection(NGHTTP2_ENHANCE_YOUR_CALM, "CONTINUATION flood");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      break;
    case NGHTTP2_DATA:
      if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) && !count_flood())
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_PRIORITY:
    case NGHTTP2_WINDOW_UPDATE:
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
      if (!(hd->flags & NGHTTP2_FLAG_ACK) && !count_flood()) return NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_RST_STREAM:
      if (!count_reset()) return NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_GOAWAY:
    case NGHTTP2_PUSH_PROMISE:
      break;
    default:  // unknown extension frames are ignored by nghttp2, but still cost us
      if (!count_flood()) return NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
  }
  return 0;
}

int Http2Session::on_begin_headers(const void* p) {
  const auto* f = static_cast<const nghttp2_frame*>(p);
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  std::unique_ptr<Stream> s;
  if (!spare_.empty()) {
    s = std::move(spare_.back());
    spare_.pop_back();
    s->id = f->hd.stream_id;
  } else {
    s = std::make_unique<Stream>(*this, f->hd.stream_id);
  }
  s->t_begin = host_.loop().now();
  if (metrics::LoopCounters* lc = host_.counters()) lc->h2_streams.add();
  if (going_away_ || host_.draining()) {
    // After GOAWAY nghttp2 ignores new streams itself; this is for a drain racing the frame.
    s->rejected = true;
  } else if (host_.drain_announced()) {
    // A connection made while the process drains: its first requests are served, then it
    // goes away like the others (a notice before any request could leave a client that
    // waits for SETTINGS with nothing sent and nowhere to send it).
    announce_drain();
  }
  nghttp2_session_set_stream_user_data(session_, f->hd.stream_id, s.get());
  block_stream_ = s.get();
  s->index = streams_.size();
  streams_.push_back(std::move(s));
  return 0;
}

int Http2Session::on_header(const void* p, std::string_view name, std::string_view value) {
  const auto* f = static_cast<const nghttp2_frame*>(p);
  // Fields of one header block arrive back to back (no other frame may come between HEADERS
  // and its CONTINUATIONs): the stream of the block being received is at hand.
  Stream* s = block_stream_ && block_stream_->id == f->hd.stream_id ? block_stream_ : find(f->hd.stream_id);
  if (!s || s->rejected) return 0;
  if (s->headers_done) return 0;  // trailers: dropped (bodies are re-framed with Content-Length)
  const auto& lim = runtime_->limits;
  s->header_bytes += name.size() + value.size() + 32;
  if (++s->header_count > lim.max_header_count || s->header_bytes > lim.max_head_size) {
    s->too_large = true;  // answered with 431 at the end of the block; nothing more is stored
    return 0;
  }
  if (s->too_large) return 0;
  if (name.size() > http1::kMaxFieldNameSize) {
    s->too_large = true;  // as for HTTP/1.1: 431 (RFC 9110 §5.4)
    return 0;
  }
  if (name.empty() || has_upper(name) || has_ctl(name) || has_ctl(value)) {
    reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "invalid header field");
    return 0;
  }
  if (name[0] == ':') {
    std::string* slot = name == ":method"      ? &s->method
                        : name == ":path"      ? &s->path
                        : name == ":scheme"    ? &s->scheme
                        : name == ":authority" ? &s->authority
                        : name == ":protocol"  ? &s->protocol
                                               : nullptr;
    if (!slot || !slot->empty()) {
      reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "unknown or repeated pseudo-header");
      return 0;
    }
    slot->assign(value);
    return 0;
  }
  if (connection_specific(name) || (name == "te" && !iequals(value, "trailers"))) {
    reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "connection-specific header");
    return 0;
  }
  if (name == "te") return 0;  // "trailers" is meaningless to an HTTP/1.1 worker behind us
  if (name == "host") {
    if (!s->host_header.empty()) {
      reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "repeated host");
      return 0;
    }
    s->host_header.assign(value);
    return 0;
  }
  if (name == "cookie") {
    // RFC 9113 §8.2.3: crumbs are joined with "; " for HTTP/1.1 (an empty one adds nothing).
    if (value.empty()) return 0;
    if (!s->cookie.empty()) s->cookie.append("; ");
    s->cookie.append(value);
    return 0;
  }
  if (name == "content-length") {
    uint64_t v = 0;
    if (value.empty() || value.size() > 19 || s->content_length >= 0) {
      reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "bad content-length");
      return 0;
    }
    for (char c : value) {
      if (c < '0' || c > '9') {
        reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "bad content-length");
        return 0;
      }
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    s->content_length = static_cast<int64_t>(v);
  }
  s->add_field(name, value);
  return 0;
}

int Http2Session::on_invalid_header(const void* p, std::string_view, std::string_view) {
  const auto* f = static_cast<const nghttp2_frame*>(p);
  if (Stream* s = find(f->hd.stream_id)) reset_stream(*s, NGHTTP2_PROTOCOL_ERROR, "invalid header field");
  // Never 0: that would make nghttp2 drop the field and keep the stream.
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int Http2Session::on_frame_recv(const void* p) {
  const auto* f = static_cast<const nghttp2_frame*>(p);
  Stream* s = f->hd.stream_id ? find(f->hd.stream_id) : nullptr;
  if (metrics::LoopCounters* lc = host_.counters()) {
    if (f->hd.type == NGHTTP2_RST_STREAM) lc->rst_received[metrics::h2_error_index(f->rst_stream.error_code)].add();
    else if (f->hd.type == NGHTTP2_GOAWAY) lc->goaway_received[metrics::h2_error_index(f->goaway.error_code)].add();
  }
  switch (f->hd.type) {
    case NGHTTP2_HEADERS:
      if (!s || s->rejected) return 0;
      if (!s->headers_done) {
        s->headers_done = true;
        // A malformed head is reset before its body comes (431 waits for the block's end).
        if (!s->too_large && !valid_head(*s)) return 0;
        // The body deadline counts from here (a request without a body needs no clock read).
        if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) s->body_progress = host_.loop().now();
        if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM) && !s->too_large && s->protocol.empty()) {
          headers_before_body(*s);  // sets the body up, buffered or streamed
          return 0;
        }
        s->body.reset(RequestBody::settings(*runtime_, host_.counters(), false));
      }
      if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        s->end_stream = true;
        request_complete(*s);
      } else if (!s->protocol.empty() && !s->too_large) {
        request_complete(*s);  // extended CONNECT: the request is its header block
      } else if (s->too_large) {
        respond_error(*s, 431);
      }
      return 0;
    case NGHTTP2_DATA:
      if (s && s->tunnel && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        tunnel_client_end(*s);
        return 0;
      }
      if (s && !s->rejected && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->end_stream = true;
        request_complete(*s);
      }
      return 0;
    case NGHTTP2_PING:
      if ((f->hd.flags & NGHTTP2_FLAG_ACK) && drain_noticed_ &&
          std::memcmp(f->ping.opaque_data, kDrainPing, sizeof kDrainPing) == 0)
        drain();  // every stream the client opened before the notice is in
      return 0;
    default: return 0;
  }
}

int Http2Session::on_data_chunk(int32_t id, std::string_view data) {
  Stream* s = find(id);
  if (s && s->tunnel && !s->rejected && !s->discard_body) {
    tunnel_data(*s, data);
    return 0;
  }
  if (!s || s->rejected || s->discard_body || (!s->streaming && s->ex.state != ExchangeState::Idle) ||
      (s->streaming && s->body.closed())) {
    // Dropped, but the flow-control window must still reopen.
    nghttp2_session_consume(session_, id, data.size());
    return 0;
  }
  s->body_progress = host_.loop().now();
  switch (s->body.append(data)) {
    case RequestBody::Status::Ok: break;
    case RequestBody::Status::TooLarge:
      nghttp2_session_consume(session_, id, data.size());
      s->ex.reject_reason = "body too large";
      body_error(*s, 413);
      return 0;
    case RequestBody::Status::TempFileError:
      nghttp2_session_consume(session_, id, data.size());  // logged (rate-limited) by RequestBody
      s->ex.reject_reason = "body temp file error";
      body_error(*s, 500);
      return 0;
  }
  if (s->streaming) {
    // Given back to flow control as the worker takes it (stream_drained): a slow worker
    // slows the client down instead of filling memory.
    s->unacked += data.size();
  } else if (s->body.spilled()) {
    // On disk, not in memory: no budget needed.
    if (s->budget) release_budget(*s);
    nghttp2_session_consume(session_, id, data.size());
  } else {
    consume(*s, data.size());
  }
  return 0;
}

void Http2Session::stream_drained(Stream& s) {
  uint64_t n = s.body.released() - s.acked_release;
  if (n > s.unacked) n = s.unacked;
  if (n == 0 || closed_) return;
  s.acked_release += n;
  s.unacked -= n;
  s.body_progress = host_.loop().now();  // the client was waiting for the worker, not idle
  nghttp2_session_consume(session_, s.id, n);
  write_soon();
}

void Http2Session::body_error(Stream& s, int status) {
  s.discard_body = true;
  if (s.streaming && (s.ex.state != ExchangeState::Idle)) {
    // Part of the body went to a worker: that request is aborted.
    s.body.fail();
    bool started = s.submitted;
    s.ex.cancel();
    if (started) {
      reset_stream(s, NGHTTP2_CANCEL, "request body failed after the response started");
      return;
    }
  }
  respond_error(s, status);
}

void Http2Session::headers_before_body(Stream& s) {
  // The head of a request with a body: what can be answered without the body is answered
  // now (RFC 9110 §10.1.1), before the client sends it. The head passed valid_head already;
  // the body's length is checked by request_complete once the stream ends.
  // valid_head() saw a method, a :path and a host, and answered a plain CONNECT itself.
  std::string_view host = s.authority.empty() ? std::string_view(s.host_header) : std::string_view(s.authority);
  const ListenerRuntime* l = conn_.listener();
  const bool admin = l && l->admin;
  const auto& rt = host_.runtime();
  const Router::Entry* route = !admin ? rt->router.find(host, s.path) : nullptr;
  // -1: a static route.
  const AppRuntime* app = route && route->app >= 0 ? &rt->apps[static_cast<size_t>(route->app)] : nullptr;
  // request_buffering = false: the worker is chosen now and gets the body as it arrives.
  // FastCGI and CGI apps need the length up front: without content-length they are buffered.
  const bool streaming = app && !app->request_buffering &&
                         (s.content_length >= 0 || app->kind == conf::AppKind::Http || app->kind == conf::AppKind::Wsgi);
  // Set up once, in its final mode (an answer below closes it again).
  s.body.reset(RequestBody::settings(*runtime_, host_.counters(), streaming));
  std::string_view expect;
  int expects = 0;
  for (const auto& f : s.fields)
    if (s.field_name(f) == "expect" && expects++ == 0) expect = s.field_value(f);
  if (s.content_length >= 0 && static_cast<uint64_t>(s.content_length) > runtime_->proxy.max_body_size) {
    s.ex.reject_reason = "body too large";
    respond_error(s, 413);
    return;
  }
  if (expects > 1 || (expects == 1 && !iequals(expect, "100-continue"))) {
    s.ex.reject_reason = "unsupported expectation";
    respond_error(s, 417);
    return;
  }
  if (!admin && !route) {
    s.ex.reject_reason = "no route";
    respond_error(s, 404);
    return;
  }
  if (expects == 1) {
    // The proxy will take the body: a non-final 100 HEADERS asks for it.
    nghttp2_nv nv = {reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                     reinterpret_cast<uint8_t*>(const_cast<char*>("100")), 7, 3, NGHTTP2_NV_FLAG_NONE};
    nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s.id, nullptr, &nv, 1, nullptr);
    write_soon();
  }
  if (streaming) {
    s.streaming = true;
    s.body.set_writer(&s);
    if (metrics::LoopCounters* lc = host_.counters()) lc->bodies_streamed.add();
    start_exchange(s);
  }
}

void Http2Session::consume(Stream& s, size_t n) {
  // Open the window only while the connection's buffered bodies stay within the budget; the
  // rest waits (the client is then blocked by flow control, not buffered by us).
  if (body_used_ + n <= body_budget_ && unconsumed_.empty()) {
    body_used_ += n;
    s.budget += n;
    nghttp2_session_consume(session_, s.id, n);
    return;
  }
  unconsumed_.emplace_back(s.id, n);
}

void Http2Session::release_budget(Stream& s) {
  body_used_ -= std::min(body_used_, s.budget);
  s.budget = 0;
  while (!unconsumed_.empty() && body_used_ + unconsumed_.front().second <= body_budget_) {
    auto [id, n] = unconsumed_.front();
    unconsumed_.erase(unconsumed_.begin());
    if (Stream* o = find(id)) {
      body_used_ += n;
      o->budget += n;
    }
    nghttp2_session_consume(session_, id, n);
  }
  write_soon();
}

int Http2Session::on_stream_close(int32_t id, uint32_t error_code) {
  Stream* found = find(id);
  if (!found) return 0;
  Stream& s = *found;
  if (s.ex.state == ExchangeState::Tunnel) {
    // A tunnel ends with its stream, however it ended: the worker connection closes and the
    // lease goes back now; one access-log line for the whole tunnel.
    s.ex.cancel();
    s.ex.log(conn_.client_ip());
  } else if (error_code != NGHTTP2_NO_ERROR || !s.resp_complete) {
    // Reset by the client (or by us) before the response was done: the worker's slot is
    // freed now, not left busy (the upstream request is aborted).
    if (s.ex.state == ExchangeState::Upstream || s.ex.state == ExchangeState::Queued) {
      CORRAL_LOG(Debug, "h2") << "stream " << id << " closed (" << nghttp2_http2_strerror(error_code) << ")";
    }
    s.ex.client_gone(conn_.client_ip());
  }
  for (auto u = unconsumed_.begin(); u != unconsumed_.end();) u = u->first == id ? unconsumed_.erase(u) : u + 1;
  release_budget(s);
  // A streamed body's bytes the worker never took still count against the connection window.
  if (s.unacked) nghttp2_session_consume_connection(session_, s.unacked);
  s.unacked = 0;
  s.body.close();
  nghttp2_session_set_stream_user_data(session_, id, nullptr);
  if (block_stream_ == &s) block_stream_ = nullptr;
  size_t i = s.index;
  graveyard_.push_back(std::move(streams_[i]));
  if (i + 1 != streams_.size()) {
    streams_[i] = std::move(streams_.back());
    streams_[i]->index = i;
  }
  streams_.pop_back();
  if (streams_.empty()) idle_since_ = host_.loop().now();
  return 0;
}

int Http2Session::on_frame_send(const void* p) {
  const auto* f = static_cast<const nghttp2_frame*>(p);
  // Resets the server is provoked into sending count too ("MadeYouReset", CVE-2025-8671).
  if (f->hd.type == NGHTTP2_RST_STREAM && f->rst_stream.error_code != NGHTTP2_NO_ERROR) count_reset();
  if (f->hd.type == NGHTTP2_RST_STREAM) stream_ids_.on_reset_sent(f->hd.stream_id);
  if (metrics::LoopCounters* lc = host_.counters()) {
    if (f->hd.type == NGHTTP2_RST_STREAM) lc->rst_sent[metrics::h2_error_index(f->rst_stream.error_code)].add();
    else if (f->hd.type == NGHTTP2_GOAWAY) lc->goaway_sent[metrics::h2_error_index(f->goaway.error_code)].add();
  }
  return 0;
}

void Http2Session::reset_stream(Stream& s, uint32_t error_code, const char* why) {
  if (s.rejected) return;
  s.rejected = true;
  CORRAL_LOG(Debug, "h2") << "stream " << s.id << " from " << conn_.client_ip() << " reset: " << why;
  // A request refused before it reached an app (not a response cut short).
  if (metrics::LoopCounters* lc = host_.counters(); lc && !s.submitted && s.ex.state == ExchangeState::Idle)
    lc->reject(why, 0, metrics::Protocol::Http2);
  s.ex.cancel();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, error_code);
  write_soon();
}

// ---- the request --------------------------------------------------------------------------

bool Http2Session::valid_head(Stream& s) {
  // The checks nghttp2 1.52 leaves to the application (h2_request_checks.h).
  h2::RequestFields f{s.method, s.scheme, s.path, s.authority, s.host_header, s.protocol};
  if (s.method == "OPTIONS" || s.method == "TRACE") {
    for (const auto& fr : s.fields)
      if (s.field_name(fr) == "max-forwards" && f.max_forwards_count++ == 0) f.max_forwards = s.field_value(fr);
  }
  h2::HeadCheck c = h2::check_request_head(f);
  switch (c.verdict) {
    case h2::HeadVerdict::Ok: return true;
    case h2::HeadVerdict::Malformed: reset_stream(s, NGHTTP2_PROTOCOL_ERROR, c.reason); return false;
    case h2::HeadVerdict::Answer:
      if (*c.reason) s.ex.reject_reason = c.reason;
      respond_error(s, c.status);
      return false;
  }
  return false;
}

void Http2Session::trust_forwarded(Stream& s) {
  std::string& xff = forwarded_for_scratch();
  xff.clear();
  if (!conn_.forwarded_trusted()) return;
  for (const auto& f : s.fields)
    if (s.field_name(f) == "x-forwarded-for") append_forwarded_for(xff, s.field_value(f));
  if (!xff.empty()) s.ex.forwarded_client.assign(forwarded_client(xff, conn_.client_ip(), s.ex.runtime->trusted_proxies));
}

Forwarding Http2Session::forwarding(const Exchange& ex, std::string_view host) {
  Forwarding fwd;
  fwd.client_ip = conn_.client_ip();
  fwd.trusted_peer = conn_.forwarded_trusted();
  fwd.forwarded_for = forwarded_for_scratch();  // trust_forwarded() of this request
  fwd.real_ip = ex.forwarded_client;
  fwd.proto = conn_.tls() ? "https" : "http";
  fwd.host = host;
  fwd.request_id = ex.request_id;
  fwd.traceparent = ex.traceparent;
  fwd.keep_tracestate = ex.trace_from_client;
  fwd.server_port = conn_.server_port();
  fwd.client_port = conn_.client_port();
  fwd.received_protocol = "2";  // Via: 2 corral
  return fwd;
}

void Http2Session::request_complete(Stream& s) {
  if (s.rejected || s.discard_body) return;
  if (s.streaming) {
    // The exchange runs already; the body is complete once its length checks out.
    if (s.content_length >= 0 && static_cast<uint64_t>(s.content_length) != s.body.size()) {
      s.body.fail();
      reset_stream(s, NGHTTP2_PROTOCOL_ERROR, "body length differs from content-length");
      return;
    }
    s.body.finish();
    return;
  }
  if (s.submitted) return;
  if (s.too_large) {
    respond_error(s, 431);
    return;
  }
  if (s.content_length >= 0 && static_cast<uint64_t>(s.content_length) != s.body.size()) {
    reset_stream(s, NGHTTP2_PROTOCOL_ERROR, "body length differs from content-length");
    return;
  }
  // The head was checked when its block ended (on_frame_recv).
  if (s.method == "CONNECT") {
    connect_request(s);
    return;
  }
  s.body.finish();
  start_exchange(s);
}

void Http2Session::start_exchange(Stream& s) {
  Exchange& ex = s.ex;
  ex.begin();
  ex.version_major = 2;
  ex.version_minor = 0;
  std::string_view host = s.authority.empty() ? std::string_view(s.host_header) : std::string_view(s.authority);
  ex.method = s.method;
  ex.target = s.path;
  ex.host.assign(host);
  if (host.empty()) {
    ex.reject_reason = "missing :authority and host";
    respond_error(s, 400);
    return;
  }
  std::string_view traceparent;
  int traceparents = 0;
  for (const auto& f : s.fields) {
    std::string_view n = s.field_name(f);
    if (n == "user-agent") ex.user_agent = s.field_value(f);
    else if (n == "referer") ex.referer = s.field_value(f);
    else if (n == "traceparent" && traceparents++ == 0) traceparent = s.field_value(f);
  }
  ex.set_trace(traceparent, traceparents);
  ex.had_body = s.body.size() > 0 || s.content_length > 0 || s.streaming;
  if (ex.route(host, s.path, conn_.listener()) < 0) {
    respond_error(s, 404);
    return;
  }
  if (auto which = ex.captured_fields(); which != statics::StaticRequest::Fields::None)
    for (const auto& f : s.fields) ex.static_req.capture(s.field_name(f), s.field_value(f), which);
  trust_forwarded(s);
  if (ex.is_static()) {
    if (!ex.needs_upstream_head()) {
      ex.submit({}, conn_.client_ip(), conn_.tls());  // answered from the route's folder
      return;
    }
  }
  // The HTTP/1.1 head for the worker: the same re-framing as for an HTTP/1.1 client.
  http1::RequestHead& head = req_head_;  // reused: its field vector keeps its capacity
  head.method = s.method;
  head.target = s.path;
  head.version_minor = 1;
  head.host = host;
  head.headers.clear();
  head.headers.push_back({"host", host});
  for (const auto& f : s.fields) head.headers.push_back({s.field_name(f), s.field_value(f)});
  if (!s.cookie.empty()) head.headers.push_back({"cookie", s.cookie});
  Forwarding fwd = forwarding(ex, host);
  // As for HTTP/1.1 clients: corral-worker maps the prefix onto SCRIPT_NAME for cgi apps.
  if (const AppRuntime* a = ex.routed_app(); a && a->kind == conf::AppKind::Cgi) fwd.prefix = ex.route_prefix;
  append_request_head(head, fwd, ex.upstream_head);
  if (!s.streaming) {
    finish_request_head(ex.upstream_head, s.body.size(), ex.had_body);
  } else if (s.content_length >= 0) {
    finish_request_head(ex.upstream_head, static_cast<uint64_t>(s.content_length), true);
  } else {
    ex.body_chunked = true;
    finish_request_head_chunked(ex.upstream_head);
  }
  head.headers.clear();  // views into the stream's strings
  ex.submit(&s.body, conn_.client_ip(), conn_.tls());
}

// ---- the response -------------------------------------------------------------------------

namespace {

// The response fields being submitted: built by stream_head/respond_error, read by submit()
// (nghttp2 copies them). One per thread, reused: no allocation per response.
struct NvScratch {
  std::vector<nghttp2_nv> nv;
  std::string names;  // lower-cased response field names
};
NvScratch& nv_scratch() {
  static thread_local NvScratch scratch;
  return scratch;
}

nghttp2_nv make_nv(std::string_view n, std::string_view v) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
          n.size(), v.size(), NGHTTP2_NV_FLAG_NONE};
}

// Starts the field list with a slot for :status (filled in by submit()).
std::vector<nghttp2_nv>& start_fields() {
  NvScratch& sc = nv_scratch();
  sc.nv.clear();
  sc.names.clear();
  sc.nv.push_back({});
  return sc.nv;
}

}  // namespace

void Http2Session::submit(Stream& s, int status, bool body, bool has_date) {
  if (s.submitted || s.rejected || closed_) return;
  s.submitted = true;
  s.send_progress = host_.loop().now();
  char st[3];
  st[0] = static_cast<char>('0' + status / 100 % 10);
  st[1] = static_cast<char>('0' + status / 10 % 10);
  st[2] = static_cast<char>('0' + status % 10);
  std::vector<nghttp2_nv>& nv = nv_scratch().nv;
  nv[0] = make_nv(":status", std::string_view(st, 3));
  const ListenerRuntime* l = conn_.listener();
  if (l && conn_.tls() && !l->hsts.empty()) nv.push_back(make_nv("strict-transport-security", l->hsts));
  // RFC 9110 §6.6.1: a Date for every answer that has none (the proxy's own, or a worker's
  // without one). nghttp2 copies the fields, so the per-second buffer may change after.
  if (!has_date) nv.push_back(make_nv("date", http_date_now()));
  nghttp2_data_provider prd;
  prd.source.ptr = &s;
  prd.read_callback = cb_read;
  nghttp2_submit_response(session_, s.id, nv.data(), nv.size(), body ? &prd : nullptr);
  write_soon();
}

void Http2Session::stream_head(Stream& s, const http1::ResponseHead& head) {
  if (s.tunnel && head.status >= 200 && head.status < 300) {
    // A 2xx to an extended CONNECT means "tunnel open" (RFC 8441): a worker that answered
    // the GET without switching did not open one.
    CORRAL_LOG(Warn, "h2") << "stream " << s.id << ": the worker answered a WebSocket upgrade with " << head.status
                           << " instead of 101 [rid=" << s.ex.request_id << "]";
    s.ex.cancel();
    respond_error(s, 502);
    stream_tunnel_writable(s);  // data sent before the answer is dropped: its window reopens
    return;
  }
  // End-to-end headers only, names lower-cased (HTTP/2 requires it); framing is HTTP/2's.
  std::vector<nghttp2_nv>& nv = start_fields();
  std::string& names = nv_scratch().names;
  size_t total = 0;
  for (const auto& f : head.headers) total += f.name.size();
  constexpr size_t kDigits = 20;  // room for the content-length value
  names.reserve(total + kDigits);  // appended below without reallocating: the views into it stay valid
  ConnectionTokens conn = connection_tokens(head.headers);
  bool has_date = false;  // learnt here, as the fields are copied
  for (const auto& f : head.headers) {
    if (is_hop_by_hop(f.name) || iequals(f.name, "transfer-encoding") || iequals(f.name, "content-length")) continue;
    if (conn.count && conn.contains(f.name, head.headers)) continue;
    has_date = has_date || iequals(f.name, "date");
    size_t off = names.size();
    for (char c : f.name) names.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    nv.push_back(make_nv(std::string_view(names).substr(off, f.name.size()), f.value));
  }
  const bool head_request = s.ex.method == "HEAD";
  // One content-length, from the parsed head (a FastCGI app's is not among its fields): the
  // body's length, or for HEAD the GET's when the worker sent one (RFC 9110 §9.3.2).
  if (head.body == http1::BodyKind::ContentLength ||
      (head_request && head.has_content_length && head.status != 204 && head.status >= 200)) {
    size_t off = names.size();
    append_decimal(names, head.content_length);
    nv.push_back(make_nv("content-length", std::string_view(names).substr(off)));
  }
  bool body = !(head_request || head.status == 204 || head.status == 304);
  submit(s, head.status, body, has_date);
  if (!body) s.resp_complete = true;
  if (s.tunnel) stream_tunnel_writable(s);  // no tunnel: data sent before the answer is dropped
}

void Http2Session::stream_data(Stream& s) {
  if (s.deferred) {
    s.deferred = false;
    nghttp2_session_resume_data(session_, s.id);
  }
  write_soon();
}

void Http2Session::stream_complete(Stream& s) {
  s.resp_complete = true;
  if (s.streaming && s.unacked) {
    // The worker answered before taking the whole body: the rest is read and dropped.
    nghttp2_session_consume(session_, s.id, s.unacked);
    s.unacked = 0;
  }
  s.ex.log(conn_.client_ip());
  stream_data(s);
}

void Http2Session::stream_failed(Stream& s, int status, bool retry_after) {
  if (status != 0) {
    respond_error(s, status, retry_after);
    return;
  }
  // Part of the response is out: reset the stream (the HTTP/2 way to say "incomplete").
  s.ex.log(conn_.client_ip());
  reset_stream(s, NGHTTP2_INTERNAL_ERROR, "upstream failed mid-response");
}

void Http2Session::respond_error(Stream& s, int status, bool retry_after) {
  if (s.submitted || s.rejected) return;
  s.discard_body = true;  // answered: the rest of the upload is dropped
  s.body.close();         // its temp file goes now
  std::string_view reason = http1::reason_phrase(status);
  s.ex.status = status;
  s.resp.assign(reason);
  s.resp.push_back('\n');
  s.ex.bytes_sent = s.resp.size();
  s.resp_complete = true;
  if (s.ex.t_start == Clock::time_point{}) s.ex.t_start = s.t_begin;
  if (s.ex.method.empty()) s.ex.method = s.method;
  if (s.ex.target.empty()) s.ex.target = s.path;
  s.ex.version_major = 2;
  s.ex.log(conn_.client_ip());
  char len[24];
  int n = std::snprintf(len, sizeof len, "%zu", s.resp.size());
  std::vector<nghttp2_nv>& nv = start_fields();
  nv.push_back(make_nv("content-type", "text/plain"));
  nv.push_back(make_nv("content-length", std::string_view(len, static_cast<size_t>(n))));
  if (retry_after) nv.push_back(make_nv("retry-after", "1"));
  submit(s, status, true, false);
}

long Http2Session::read_response(int32_t id, uint8_t* buf, size_t len, uint32_t* flags) {
  Stream* s = find(id);
  if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (s->file) {
    // A static file: read straight into the DATA frame nghttp2 is building (it asks only
    // for what flow control and the connection's output high-water mark allow).
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, s->file_left));
    ssize_t r;
    do {
      r = ::pread(s->file->fd.get(), buf, n, static_cast<off_t>(s->file_off));
    } while (r < 0 && errno == EINTR);
    if (r <= 0 && n > 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the file shrank: reset the stream
    s->file_off += static_cast<uint64_t>(r);
    s->file_left -= static_cast<uint64_t>(r);
    s->send_progress = flush_now_;
    if (s->file_left == 0) {
      s->file.reset();
      if (s->resp_complete) *flags |= NGHTTP2_DATA_FLAG_EOF;  // else the next call ends it
    }
    return r;
  }
  size_t avail = s->resp.size() - s->resp_pos;
  size_t n = std::min(avail, len);
  if (n) {
    std::memcpy(buf, s->resp.data() + s->resp_pos, n);
    s->resp_pos += n;
    s->send_progress = flush_now_;  // read_response runs inside flush()
    if (s->resp_pos == s->resp.size()) {
      s->resp.clear();
      s->resp_pos = 0;
    } else if (s->resp_pos > kH2StreamBufferLimit / 2) {
      s->resp.erase(0, s->resp_pos);
      s->resp_pos = 0;
    }
    if (s->ex.upstream_paused() && s->resp.size() - s->resp_pos < kH2StreamBufferLimit / 2) s->ex.resume_upstream();
  }
  if (s->resp_complete && s->resp_pos == s->resp.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<long>(n);
  }
  if (n == 0) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<long>(n);
}

// ---- deadlines ----------------------------------------------------------------------------

void Http2Session::on_timer() {
  if (closed_) return;
  if (lingering_) {
    if (host_.loop().now() >= linger_until_) close();
    else timer_.arm(100ms);
    return;
  }
  const auto& p = runtime_->proxy;
  auto now = host_.loop().now();
  timer_.arm(1s);
  if (drain_noticed_ && !going_away_ && now - drain_noticed_at_ >= kDrainAckWait) {
    drain();
    if (closed_) return;
  }
  if (out_pos_ < out_.size() && now - write_progress_ > p.client_body_timeout) {
    close();  // the client stopped reading the socket
    return;
  }
  if (streams_.empty()) {
    // An idle connection keeps no spare streams (their strings and exchanges) and no
    // cached nghttp2 blocks.
    if (now - idle_since_ >= 1s) {
      spare_.clear();
      mem_.trim();
    }
    auto idle = p.keepalive_timeout.count() > 0 ? p.keepalive_timeout : std::chrono::milliseconds(1000);
    if (now - idle_since_ >= idle) {
      drain();  // GOAWAY(NO_ERROR), then close once it is out
      if (!closed_ && streams_.empty()) close();
    }
    return;
  }
  std::vector<Stream*> all;
  for (auto& s : streams_) all.push_back(s.get());
  for (Stream* s : all) {
    if (s->rejected) continue;
    if (!s->headers_done) {
      if (now - s->t_begin > p.client_header_timeout) {
        end_connection(NGHTTP2_ENHANCE_YOUR_CALM, "header block timeout");
        return;
      }
    } else if (!s->end_stream && !s->discard_body && !s->tunnel && (!s->submitted || s->streaming) &&
               !(s->streaming && s->unacked > 0) && !s->resp_complete &&
               now - s->body_progress > p.client_body_timeout) {
      // Not while a streamed body waits for the worker (unacked bytes: the client is held
      // back by our own flow control), nor once the worker has answered in full.
      body_error(*s, 408);
    } else if (s->submitted && !(s->resp_complete && s->resp_pos == s->resp.size()) &&
               s->resp.size() > s->resp_pos && now - s->send_progress > p.client_body_timeout) {
      reset_stream(*s, NGHTTP2_CANCEL, "client stopped reading the response");
    }
  }
  flush();
  bury();
}

// ---- RFC 8441 extended CONNECT (WebSocket tunnels) ----------------------------------------

void Http2Session::connect_request(Stream& s) {
  Exchange& ex = s.ex;
  ex.begin();
  ex.version_major = 2;
  ex.version_minor = 0;
  std::string_view host = s.authority.empty() ? std::string_view(s.host_header) : std::string_view(s.authority);
  ex.method = s.method;
  ex.target = s.path;
  ex.host.assign(host);
  std::string_view traceparent;
  int traceparents = 0;
  for (const auto& f : s.fields) {
    std::string_view n = s.field_name(f);
    if (n == "user-agent") ex.user_agent = s.field_value(f);
    else if (n == "referer") ex.referer = s.field_value(f);
    else if (n == "traceparent" && traceparents++ == 0) traceparent = s.field_value(f);
  }
  ex.set_trace(traceparent, traceparents);
  if (host.empty()) {
    ex.reject_reason = "missing :authority and host";
    respond_error(s, 400);
    return;
  }
  if (ex.route(host, s.path, conn_.listener()) < 0) {
    respond_error(s, 404);
    return;
  }
  trust_forwarded(s);
  const AppRuntime* a = ex.routed_app();
  // Only WebSocket has an HTTP/1.1 form to translate to, and only an http app can switch.
  if (s.protocol != "websocket" || !a || a->kind != conf::AppKind::Http) {
    ex.reject_reason = s.protocol != "websocket" ? "unsupported :protocol" : "upgrade to an app that cannot switch";
    respond_error(s, 501);
    return;
  }
  // The worker gets what an HTTP/1.1 client would send: GET with Upgrade, Connection and a
  // fresh Sec-WebSocket-Key (the client's Sec-WebSocket-Version, -Protocol and -Extensions
  // pass as they are); its Sec-WebSocket-Accept is not passed back (RFC 8441 §5).
  http1::RequestHead& head = req_head_;
  head.method = "GET";
  head.target = s.path;
  head.version_minor = 1;
  head.host = host;
  head.body = http1::BodyKind::None;
  head.headers.clear();
  head.headers.push_back({"host", host});
  for (const auto& f : s.fields)
    if (s.field_name(f) != "sec-websocket-key") head.headers.push_back({s.field_name(f), s.field_value(f)});
  if (!s.cookie.empty()) head.headers.push_back({"cookie", s.cookie});
  Forwarding fwd = forwarding(ex, host);
  fwd.upgrade = "websocket";
  append_request_head(head, fwd, ex.upstream_head);
  std::array<char, kWebSocketKeySize> key;
  ex.upstream_head.append("Sec-WebSocket-Key: ");
  ex.upstream_head.append(websocket_key(key));
  ex.upstream_head.append("\r\n", 2);
  finish_request_head(ex.upstream_head, 0, false);
  head.headers.clear();
  ex.upgrade = true;
  ex.had_body = false;
  s.tunnel = true;
  if (s.end_stream) s.tunnel_eof_pending = true;
  ex.submit({}, conn_.client_ip(), conn_.tls());
}

void Http2Session::tunnel_data(Stream& s, std::string_view data) {
  s.tunnel_unconsumed += data.size();
  if (s.ex.state != ExchangeState::Tunnel) {
    // Before the switch: kept (the stream's window bounds it) until the worker takes it.
    if (s.ex.state == ExchangeState::Responding || s.submitted) {
      stream_tunnel_writable(s);  // answered without a tunnel: dropped, the window reopens
    } else if (s.tunnel_pending.size() + data.size() > runtime_->proxy.max_body_size) {
      reset_stream(s, NGHTTP2_FLOW_CONTROL_ERROR, "too much data before the tunnel opened");
    } else {
      s.tunnel_pending.append(data);
    }
    return;
  }
  // The window opens again only while the worker's buffer has room: a fast client is held
  // by HTTP/2 flow control, not by memory.
  if (s.ex.tunnel_send(data)) stream_tunnel_writable(s);
}

void Http2Session::tunnel_client_end(Stream& s) {
  s.end_stream = true;
  if (s.ex.state == ExchangeState::Tunnel) s.ex.tunnel_client_eof();
  else s.tunnel_eof_pending = true;
}

void Http2Session::stream_upgrade(Stream& s, const http1::ResponseHead& head) {
  s.ex.status = 200;  // what the client gets (and the access log says)
  std::vector<nghttp2_nv>& nv = start_fields();
  std::string& names = nv_scratch().names;
  size_t total = 0;
  for (const auto& f : head.headers) total += f.name.size();
  names.reserve(total);  // no reallocation below: the views into it stay valid
  ConnectionTokens conn = connection_tokens(head.headers);
  bool has_date = false;
  for (const auto& f : head.headers) {
    if (is_hop_by_hop(f.name) || iequals(f.name, "content-length") || iequals(f.name, "sec-websocket-accept")) continue;
    if (conn.count && conn.contains(f.name, head.headers)) continue;
    has_date = has_date || iequals(f.name, "date");
    size_t off = names.size();
    for (char c : f.name) names.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    nv.push_back(make_nv(std::string_view(names).substr(off, f.name.size()), f.value));
  }
  submit(s, 200, true, has_date);
  bool room = true;
  if (!s.tunnel_pending.empty()) {
    room = s.ex.tunnel_send(s.tunnel_pending);
    std::string().swap(s.tunnel_pending);
  }
  if (room) stream_tunnel_writable(s);
  if (s.tunnel_eof_pending) {
    s.tunnel_eof_pending = false;
    s.ex.tunnel_client_eof();
  }
}

void Http2Session::stream_tunnel_eof(Stream& s) {
  s.resp_complete = true;  // END_STREAM once the buffered bytes are out
  stream_data(s);
}

void Http2Session::stream_tunnel_writable(Stream& s) {
  if (s.tunnel_unconsumed == 0 || s.rejected) return;
  nghttp2_session_consume(session_, s.id, s.tunnel_unconsumed);
  s.tunnel_unconsumed = 0;
  write_soon();
}

void Http2Session::stream_tunnel_closed(Stream& s, TunnelEnd end, const char* why) {
  if (end == TunnelEnd::Closed) return;  // both sides sent END_STREAM: nghttp2 closes the stream
  reset_stream(s, end == TunnelEnd::IdleTimeout ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR, why);
}

std::unique_ptr<FrontendSession> make_http2_session(ClientConnection& conn) {
  return std::make_unique<Http2Session>(conn);
}

}  // namespace corral::proxy
