#include "proxy/upstream/connection_client.h"

namespace corral::proxy {

void ConnectionClient::begin(const UpstreamRequest& req) {
  path_ = req.path;
  generation_ = req.generation;
  method_ = req.method;
  idempotent_ = req.idempotent;
  retried_ = false;
  paused_ = false;
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
  retried_ = true;
  conn_.reset();
  if (!open_connection()) return true;  // connect_failed reported
  send_request();
  return true;
}

}  // namespace corral::proxy
