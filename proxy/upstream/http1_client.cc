#include "proxy/upstream/http1_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/base/strings.h"
#include "common/http1/serializer.h"

namespace corral::proxy {
namespace {
// Worker response heads may carry large cookies; be more generous than for clients.
http1::Limits response_limits() {
  http1::Limits l;
  l.max_head_size = 64 * 1024;
  l.max_header_count = 256;
  return l;
}
constexpr size_t kReadSize = 32 * 1024;

}  // namespace

Http1Client::Http1Client(UpstreamPool& pool, UpstreamHandler& handler)
    : ConnectionClient(pool, handler), parser_(response_limits()) {}

Http1Client::~Http1Client() { abort(); }

void Http1Client::start(const UpstreamRequest& req) {
  begin(req);
  head_ = req.head;
  chunked_ = req.chunked;
  upgrade_ = req.upgrade;
  // An upgrade goes on a connection of its own: one the worker may already have closed
  // cannot be resent once it switched, and a fresh one costs a connect(2) on a Unix socket.
  if (upgrade_) {
    if (!open_connection()) return;
    send_request();
    return;
  }
  conn_ = pool_.take(path_, generation_);
  if (!conn_ && !open_connection()) return;
  send_request();
}

void Http1Client::send_request() {
  conn_->set_handler(this);
  state_ = State::Writing;
  head_written_ = 0;
  body_off_ = 0;
  frame_.clear();
  frame_pos_ = 0;
  chunk_left_ = 0;
  chunks_started_ = last_chunk_ = body_wait_ = written_all_ = false;
  received_ = 0;
  in_.clear();
  parser_.reset();
  // Try at once: the socket is almost always writable, which saves an epoll round trip.
  on_upstream_io(false, true);
}

bool Http1Client::write_request() {
  body_wait_ = false;
  for (;;) {
    ssize_t w;
    if (head_written_ < head_.size()) {
      // The head, with the first body bytes when they are in memory: one system call for
      // the usual small request.
      iovec iov[2];
      int n = 0;
      iov[n++] = {const_cast<char*>(head_.data() + head_written_), head_.size() - head_written_};
      RequestBody::Piece p;
      if (!chunked_) p = body_peek(0, SIZE_MAX);
      if (p.len && p.data) iov[n++] = {const_cast<char*>(p.data), p.len};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(n);
      w = ::sendmsg(conn_->fd(), &msg, MSG_NOSIGNAL);
      if (w >= 0) {
        size_t h = std::min(static_cast<size_t>(w), head_.size() - head_written_);
        head_written_ += h;
        body_off_ += static_cast<size_t>(w) - h;
        if (body_off_) body_sent(body_off_);
        continue;
      }
    } else if (frame_pos_ < frame_.size()) {
      w = ::send(conn_->fd(), frame_.data() + frame_pos_, frame_.size() - frame_pos_, MSG_NOSIGNAL);
      if (w >= 0) {
        frame_pos_ += static_cast<size_t>(w);
        if (frame_pos_ == frame_.size()) {
          frame_.clear();
          frame_pos_ = 0;
        }
        continue;
      }
    } else {
      RequestBody::Piece p;
      if (chunked_) {
        if (chunk_left_ == 0) {
          if (last_chunk_) return true;
          p = body_peek(body_off_, 1 << 20);
          if (p.len) {
            // The CRLF that ends the previous chunk's data goes with the next size line.
            if (chunks_started_) http1::append_chunk_end(frame_);
            http1::append_chunk_header(frame_, p.len);
            chunks_started_ = true;
            chunk_left_ = p.len;
            continue;
          }
          if (body_complete()) {
            if (chunks_started_) http1::append_chunk_end(frame_);
            http1::append_last_chunk(frame_);
            last_chunk_ = true;
            continue;
          }
        } else {
          p = body_peek(body_off_, static_cast<size_t>(std::min<uint64_t>(chunk_left_, SIZE_MAX)));
        }
      } else {
        p = body_peek(body_off_, SIZE_MAX);
        if (!p.len && body_complete()) return true;
      }
      if (!p.len) {
        if (body_failed()) {
          fail("the client's request body was cut short");
          return false;
        }
        // A streamed body: the rest has not arrived yet (on_body_more re-arms writing).
        body_wait_ = true;
        conn_->want(!paused_, false);
        return false;
      }
      w = send_piece(p);
      if (w >= 0) {
        body_off_ += static_cast<uint64_t>(w);
        if (chunked_) chunk_left_ -= static_cast<uint64_t>(w);
        body_sent(body_off_);
        continue;
      }
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      conn_->want(true, true);
      return false;
    }
    if (retry_fresh()) return false;
    fail("write to worker failed");
    return false;
  }
}

void Http1Client::on_upstream_io(bool readable, bool writable) noexcept {
  if (!conn_) return;
  if (state_ == State::Writing && writable) {
    if (!write_request()) {
      // Waiting (socket full, or body bytes not here yet); a read event may still bring an
      // early answer.
      if (conn_ && readable && state_ == State::Writing) read_response();
      return;
    }
    state_ = State::ReadingHead;
    written_all_ = true;
    conn_->want(!paused_, false);
    // Nothing to read yet in the common case; let the loop tell us.
    return;
  }
  if (readable && (state_ == State::ReadingHead || state_ == State::ReadingBody)) read_response();
  else if (readable && state_ == State::Writing) read_response();  // early response or EOF
}

void Http1Client::read_response() {
  for (int rounds = 0; rounds < 4 && conn_ && !paused_; ++rounds) {
    // Nothing carried over from an earlier read (the usual case: a response comes whole in
    // one read): read into the loop's shared buffer and parse from there; only a remainder
    // the parser still needs is copied into in_.
    char* shared = in_.empty() ? pool_.borrow_scratch() : nullptr;
    struct Give {
      UpstreamPool& pool;
      char* p;
      ~Give() {
        if (p) pool.return_scratch();
      }
    } give{pool_, shared};
    size_t room = UpstreamPool::kScratchSize;
    char* p = shared ? shared : in_.prepare(kReadSize, &room);
    ssize_t r = ::recv(conn_->fd(), p, room, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (retry_fresh()) return;
      fail("worker connection reset");
      return;
    }
    if (r == 0) {
      if (received_ == 0 && retry_fresh()) return;
      if (state_ == State::ReadingBody && decoder_.on_eof()) {
        finish(false);
        return;
      }
      fail(received_ == 0 ? "worker closed the connection before responding" : "worker closed mid-response");
      return;
    }
    received_ += static_cast<uint64_t>(r);
    if (shared) {
      std::string_view rest(p, static_cast<size_t>(r));
      if (!parse(rest)) return;
      if (!rest.empty()) {
        size_t n = 0;
        std::memcpy(in_.prepare(rest.size(), &n), rest.data(), rest.size());
        in_.commit(rest.size());
      }
    } else {
      in_.commit(static_cast<size_t>(r));
      if (!parse_buffered()) return;
    }
    if (static_cast<size_t>(r) < room) break;  // drained the socket
  }
  if (conn_) handler_.on_upstream_read_done();
}

bool Http1Client::parse_buffered() {
  std::string_view rest = in_.readable();
  // false: finish/fail/abort already emptied in_ (or a new request reset it): leave it alone.
  if (!parse(rest)) return false;
  in_.consume(in_.size() - rest.size());
  return true;
}

bool Http1Client::parse(std::string_view& in) {
  while (true) {
    if (state_ == State::Writing || state_ == State::ReadingHead) {
      auto hr = parser_.parse(in, method_, resp_);
      if (hr.status == http1::ParseStatus::Incomplete) return true;
      if (hr.status == http1::ParseStatus::Error) {
        fail(hr.error.reason && *hr.error.reason ? hr.error.reason : "malformed response from worker");
        return false;
      }
      in.remove_prefix(hr.consumed);
      parser_.reset();
      if (resp_.status == 101) {
        if (!upgrade_) {
          fail("101 Switching Protocols to a request that did not ask for it");
          return false;
        }
        // The connection now carries the tunnel: it leaves this client (never pooled).
        state_ = State::Idle;
        std::unique_ptr<UpstreamConn> c = std::move(conn_);
        c->set_handler(nullptr);
        std::string_view early = in;
        in = {};
        handler_.on_upstream_upgrade(resp_, std::move(c), early);
        in_.clear();
        return false;
      }
      if (resp_.status < 200) {
        // RFC 9110 §15.2: a proxy forwards the 1xx responses it did not ask for itself.
        handler_.on_upstream_interim(resp_);
        if (!conn_) return false;  // aborted by the handler
        continue;
      }
      if (state_ == State::Writing) {
        // The worker answered before reading the whole request; it will not read the rest.
        state_ = State::ReadingHead;
        body_wait_ = false;
        conn_->want(!paused_, false);
      }
      decoder_.start(resp_.body, resp_.content_length);
      state_ = State::ReadingBody;
      handler_.on_upstream_head(resp_);
      if (!conn_) return false;  // aborted by the handler
      if (resp_.body == http1::BodyKind::None) {
        finish(resp_.keep_alive && in.empty());
        return false;
      }
    }
    // ReadingBody
    while (!in.empty()) {
      auto st = decoder_.step(in);
      if (st.error) {
        fail(st.why.reason && *st.why.reason ? st.why.reason : "malformed response body from worker");
        return false;
      }
      if (!st.data.empty()) {
        handler_.on_upstream_body(st.data);
        if (!conn_) return false;
      }
      in.remove_prefix(st.consumed);
      if (st.done) break;
      if (st.consumed == 0) break;
    }
    if (decoder_.done()) {
      // Bytes after the response mean a confused worker: never reuse that connection.
      finish(resp_.keep_alive && resp_.body != http1::BodyKind::UntilClose && in.empty());
      return false;
    }
    return true;
  }
}

void Http1Client::finish(bool reusable) {
  state_ = State::Idle;
  end_body();
  std::unique_ptr<UpstreamConn> c = std::move(conn_);
  // A worker that answered before taking the whole request would read the rest as its
  // next request: such a connection is not reused.
  if (reusable && written_all_) {
    pool_.put(std::move(c));
  } else {
    c->want(false, false);
  }
  c.reset();
  in_.clear();
  handler_.on_upstream_complete();
}

void Http1Client::fail(const char* why) {
  state_ = State::Idle;
  end_body();
  conn_.reset();
  in_.clear();
  handler_.on_upstream_error(why);
}

void Http1Client::abort() {
  state_ = State::Idle;
  end_body();
  conn_.reset();
  in_.clear();
  paused_ = false;
}

void Http1Client::release_idle_buffers() {
  if (state_ == State::Idle) in_.release_if_empty();
}

void Http1Client::pause_reading() {
  paused_ = true;
  if (conn_ && state_ != State::Writing) conn_->want(false, false);
}

void Http1Client::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (!conn_ || state_ == State::Writing) return;
  conn_->want(true, false);
  // Bytes already buffered are processed now; the socket may have nothing new to say.
  if (!in_.empty() && parse_buffered() && conn_) handler_.on_upstream_read_done();
}

}  // namespace corral::proxy
