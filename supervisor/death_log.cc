#include "supervisor/death_log.h"

namespace corral::supervisor {

namespace {

void bound(DeathRecord& r) {
  if (r.serving && r.serving->size() > DeathLog::kMaxRequests) {
    r.serving_omitted = r.serving->size() - DeathLog::kMaxRequests;
    r.serving->resize(DeathLog::kMaxRequests);
  }
  if (r.line.size() > DeathLog::kMaxLine) {
    size_t cut = DeathLog::kMaxLine;
    while (cut > 0 && (static_cast<unsigned char>(r.line[cut]) & 0xc0) == 0x80) --cut;  // a UTF-8 boundary
    r.line.resize(cut);
    r.line += "...";
  }
}

}  // namespace

uint64_t DeathLog::add(DeathRecord r) {
  bound(r);
  const uint64_t id = ++next_id_;
  records_.push_back({id, std::move(r)});
  while (records_.size() > kCapacity) records_.pop_front();
  return id;
}

void DeathLog::complete(uint64_t id, std::optional<std::vector<control::SlotRequestInfo>> serving, std::string line) {
  // Ids grow with position, and answers come back within a second: search from the newest.
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (it->id != id) continue;
    it->record.serving = std::move(serving);
    it->record.line = std::move(line);
    bound(it->record);
    return;
  }
}

void DeathLog::note_leftovers(pid_t pid, const std::string& leftovers) {
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (it->record.pid != pid) continue;
    it->record.leftovers = leftovers.substr(0, DeathLog::kMaxLine);
    return;
  }
}

nlohmann::json DeathLog::json() const {
  nlohmann::json out = nlohmann::json::array();
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) out.push_back(to_json(it->record));
  return out;
}

nlohmann::json to_json(const DeathRecord& r) {
  nlohmann::json serving = nullptr;
  if (r.serving) {
    serving = nlohmann::json::array();
    for (const auto& q : *r.serving)
      serving.push_back({{"id", q.id}, {"trace_id", q.trace_id}, {"method", q.method}, {"path", q.path},
                         {"elapsed_ms", q.elapsed_ms}, {"state", q.state}});
  }
  nlohmann::json out = {{"time_ms", r.time_ms},
          {"worker", r.worker},
          {"pid", r.pid},
          {"generation", r.generation},
          {"incarnation", r.incarnation},
          {"reason", r.reason},
          {"exit", r.exit},
          {"expected", r.expected},
          {"uptime_seconds", r.uptime_seconds},
          {"requests", r.requests},
          {"in_flight", r.in_flight},
          {"in_flight_requests", std::move(serving)},
          {"in_flight_requests_omitted", r.serving_omitted},
          {"line", r.line}};
  if (!r.leftovers.empty()) out["leftovers"] = r.leftovers;
  return out;
}

}  // namespace corral::supervisor
