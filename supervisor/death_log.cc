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

nlohmann::json DeathLog::state() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : records_) out.push_back(to_json(e.record));
  return out;
}

void DeathLog::restore(const nlohmann::json& records) {
  records_.clear();
  if (!records.is_array()) return;
  for (const auto& j : records) {
    if (!j.is_object()) continue;
    DeathRecord r;
    r.time_ms = j.value("time_ms", int64_t{0});
    r.worker = j.value("worker", 0);
    r.pid = j.value("pid", 0);
    r.generation = j.value("generation", uint64_t{0});
    r.incarnation = j.value("incarnation", uint64_t{0});
    r.reason = j.value("reason", "");
    r.exit = j.value("exit", "");
    r.expected = j.value("expected", false);
    r.uptime_seconds = j.value("uptime_seconds", 0.0);
    r.requests = j.value("requests", uint64_t{0});
    r.in_flight = j.value("in_flight", uint64_t{0});
    if (auto it = j.find("in_flight_requests"); it != j.end() && it->is_array()) {
      std::vector<control::SlotRequestInfo> serving;
      for (const auto& q : *it) {
        if (!q.is_object()) continue;
        control::SlotRequestInfo i;
        i.id = q.value("id", "");
        i.trace_id = q.value("trace_id", "");
        i.method = q.value("method", "");
        i.path = q.value("path", "");
        i.elapsed_ms = q.value("elapsed_ms", uint64_t{0});
        i.state = q.value("state", "");
        serving.push_back(std::move(i));
      }
      r.serving = std::move(serving);
    }
    r.serving_omitted = j.value("in_flight_requests_omitted", uint64_t{0});
    r.line = j.value("line", "");
    r.leftovers = j.value("leftovers", "");
    records_.push_back({next_id_++, std::move(r)});
  }
  while (records_.size() > kCapacity) records_.pop_front();
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
