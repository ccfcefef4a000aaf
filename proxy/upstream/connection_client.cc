#include "proxy/upstream/connection_client.h"

#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>

namespace corral::proxy {

void ConnectionClient::begin(const UpstreamRequest& req) {
  path_ = req.path;
  generation_ = req.generation;
  method_ = req.method;
  idempotent_ = req.idempotent;
  retried_ = false;
  paused_ = false;
  if (source_ && source_ != req.source) source_->set_reader(nullptr);
  source_ = req.source;
  if (source_) source_->set_reader(this);
}

RequestBody::Piece ConnectionClient::body_peek(uint64_t at, size_t max) const {
  return source_ ? source_->peek(at, max) : RequestBody::Piece{};
}

ssize_t ConnectionClient::send_piece(const RequestBody::Piece& p) {
  for (;;) {
    ssize_t w;
    if (p.fd >= 0) {
      off_t off = static_cast<off_t>(p.offset);
      w = ::sendfile(conn_->fd(), p.fd, &off, p.len);
    } else {
      w = ::send(conn_->fd(), p.data, p.len, MSG_NOSIGNAL);
    }
    if (w < 0 && errno == EINTR) continue;
    return w;
  }
}

void ConnectionClient::on_body_more() noexcept {
  if (conn_ && waiting_for_body()) conn_->want(!paused_, true);
}

bool ConnectionClient::open_connection() {
  int err = 0;
  conn_ = pool_.connect(path_, generation_, &err);
  if (!conn_) {
    become_idle();
    handler_.on_upstream_connect_failed(err);
    return false;
  }
  return true;
}

bool ConnectionClient::retry_fresh() {
  // A kept connection the worker closed while it was being picked: the request was not
  // processed (no response byte), so resending is safe for idempotent methods.
  if (!conn_ || !conn_->reused() || received_ > 0 || retried_ || !idempotent_) return false;
  if (source_ && !source_->replayable()) return false;  // streamed bytes are gone
  retried_ = true;
  conn_.reset();
  if (!open_connection()) return true;  // connect_failed reported
  send_request();
  return true;
}

}  // namespace corral::proxy
