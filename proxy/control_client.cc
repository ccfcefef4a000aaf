#include "proxy/control_client.h"

#include "common/base/log.h"

namespace corral::proxy {

ControlClient::ControlClient(ev::Loop& loop, UniqueFd fd, ControlHandler& handler) : loop_(loop) {
  channel_ = std::make_unique<control::Channel>(
      loop, std::move(fd),
      [&handler](control::Message&& m, std::vector<UniqueFd>&& fds) {
        if (auto* l = std::get_if<control::SetListeners>(&m)) {
          handler.on_set_listeners(std::move(*l), std::move(fds));
        } else if (auto* alf = std::get_if<control::AccessLogFile>(&m)) {
          handler.on_access_log_file(std::move(*alf), std::move(fds));
        } else if (auto* c = std::get_if<control::SetConfig>(&m)) {
          handler.on_set_config(std::move(*c));
        } else if (auto* p = std::get_if<control::SetPool>(&m)) {
          handler.on_set_pool(std::move(*p));
        } else if (auto* q = std::get_if<control::SlotRequestsQuery>(&m)) {
          handler.on_slot_requests_query(std::move(*q));
        } else if (auto* sq = std::get_if<control::StatsQuery>(&m)) {
          handler.on_stats_query(std::move(*sq));
        } else if (auto* f = std::get_if<control::WorkerFigures>(&m)) {
          handler.on_worker_figures(std::move(*f));
        } else if (auto* d = std::get_if<control::SetDraining>(&m)) {
          handler.on_set_draining(std::move(*d));
        } else if (std::get_if<control::Retire>(&m)) {
          handler.on_retire();
        } else if (auto* a = std::get_if<control::AdoptConnections>(&m)) {
          handler.on_adopt_connections(std::move(*a), std::move(fds));
        } else {
          CORRAL_LOG(Warn, "control") << "unexpected message " << control::type_name(m);
        }
      },
      [&handler](const Error& e) { handler.on_control_closed(e); });
}

ControlClient::~ControlClient() { *alive_ = false; }

bool ControlClient::send_with_fds(const control::Message& m, const std::vector<int>& fds) {
  return channel_ && channel_->send(m, fds);
}

void ControlClient::send(control::Message m) {
  if (loop_.is_current()) {
    channel_->send(m);
    return;
  }
  auto msg = std::make_shared<control::Message>(std::move(m));
  loop_.post([this, alive = alive_, msg] {
    if (*alive) channel_->send(*msg);
  });
}

}  // namespace corral::proxy
