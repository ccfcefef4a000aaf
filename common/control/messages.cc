#include "common/control/messages.h"

#include <cstdint>

#include <nlohmann/json.hpp>

namespace corral::control {
namespace {

using nlohmann::json;

// A slot_requests entry's optional trace_id: 32 lowercase hex digits, else dropped (the
// supervisor logs it; the proxy is not trusted with the log's contents).
std::string trace_id_field(const json& x) {
  auto it = x.find("trace_id");
  if (it == x.end() || !it->is_string()) return {};
  const auto& v = it->get_ref<const std::string&>();
  if (v.size() != 32) return {};
  for (char c : v)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  return v;
}

// Integer fields must be JSON integers within range. nlohmann's get<>() converts a float
// with a static_cast (undefined behaviour out of range: 1e20 as a uint64_t) and wraps or
// truncates other integers; a message from the proxy is not trusted.
uint64_t u64(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  throw json::type_error::create(302, "expected an integer from 0 to 2^64-1", &v);
}
int i32(const json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= INT32_MIN && v.get<int64_t>() <= INT32_MAX)
    return static_cast<int>(v.get<int64_t>());
  if (v.is_number_unsigned() && v.get<uint64_t>() <= INT32_MAX) return static_cast<int>(v.get<uint64_t>());
  throw json::type_error::create(302, "expected a 32-bit integer", &v);
}
uint64_t opt_u64(const json& j, const char* key) { return j.contains(key) ? u64(j.at(key)) : 0; }
int opt_i32(const json& j, const char* key) { return j.contains(key) ? i32(j.at(key)) : 0; }

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

json slot_to_json(const SlotInfo& s) {
  return json{{"app", s.app}, {"slot", s.slot}, {"generation", s.generation}, {"path", s.path},
              {"concurrency", s.concurrency}, {"accepting", s.accepting}, {"pid", s.pid},
              {"max_requests", s.max_requests}};
}
SlotInfo slot_from_json(const json& j) {
  SlotInfo s;
  s.app = j.at("app").get<std::string>();
  s.slot = i32(j.at("slot"));
  s.generation = u64(j.at("generation"));
  s.path = j.at("path").get<std::string>();
  s.concurrency = i32(j.at("concurrency"));
  s.accepting = j.at("accepting").get<bool>();
  s.pid = opt_i32(j, "pid");
  s.max_requests = opt_u64(j, "max_requests");
  return s;
}

json handed_to_json(const std::vector<HandedConnection>& v) {
  json out = json::array();
  for (auto& c : v)
    out.push_back({{"listener", c.listener}, {"client", c.client}, {"client_port", c.client_port},
                   {"server_port", c.server_port}, {"idle_ms", c.idle_ms}, {"fresh", c.fresh}});
  return out;
}
// At most one record's worth of fds; short strings and real port numbers (the proxy's side
// is not trusted).
std::vector<HandedConnection> handed_from_json(const json& arr) {
  if (!arr.is_array() || arr.size() > 64) throw json::type_error::create(302, "expected at most 64 connections", &arr);
  std::vector<HandedConnection> out;
  for (auto& x : arr) {
    HandedConnection c;
    c.listener = x.at("listener").get<std::string>();
    c.client = x.at("client").get<std::string>();
    if (c.listener.size() > 256 || c.client.size() > 64)
      throw json::type_error::create(302, "listener or client address too long", &x);
    c.client_port = i32(x.at("client_port"));
    c.server_port = i32(x.at("server_port"));
    if (c.client_port < 0 || c.client_port > 65535 || c.server_port < 0 || c.server_port > 65535)
      throw json::type_error::create(302, "port out of range", &x);
    c.idle_ms = u64(x.at("idle_ms"));
    c.fresh = x.at("fresh").get<bool>();
    out.push_back(std::move(c));
  }
  return out;
}

const char* kind_name(SlotEvent::Kind k) {
  switch (k) {
    case SlotEvent::Kind::Drained: return "drained";
    case SlotEvent::Kind::MaxRequests: return "max_requests";
    case SlotEvent::Kind::Refused: return "refused";
  }
  return "drained";
}
}  // namespace

std::string_view type_name(const Message& m) {
  return std::visit(Overloaded{
                        [](const SetListeners&) { return std::string_view("set_listeners"); },
                        [](const SetConfig&) { return std::string_view("set_config"); },
                        [](const SetPool&) { return std::string_view("set_pool"); },
                        [](const ProxyReady&) { return std::string_view("proxy_ready"); },
                        [](const WorkerHung&) { return std::string_view("worker_hung"); },
                        [](const ProxyStats&) { return std::string_view("proxy_stats"); },
                        [](const SlotEvent&) { return std::string_view("slot_event"); },
                        [](const SlotRequestsQuery&) { return std::string_view("slot_requests_query"); },
                        [](const SlotRequests&) { return std::string_view("slot_requests"); },
                        [](const StatsQuery&) { return std::string_view("stats_query"); },
                        [](const WorkerFigures&) { return std::string_view("worker_figures"); },
                        [](const SetDraining&) { return std::string_view("set_draining"); },
                        [](const AccessLogFile&) { return std::string_view("access_log_file"); },
                        [](const Retire&) { return std::string_view("retire"); },
                        [](const AdoptConnections&) { return std::string_view("adopt_connections"); },
                        [](const HandoffConnections&) { return std::string_view("handoff_connections"); },
                    },
                    m);
}

std::string encode(const Message& m) {
  json j = std::visit(
      Overloaded{
          [](const SetListeners& x) {
            json out{{"addresses", x.addresses}};
            if (!x.admin.empty()) out["admin"] = x.admin;
            return out;
          },
          [](const SetConfig& x) { return json{{"generation", x.generation}, {"snapshot", x.snapshot}}; },
          [](const SetPool& x) {
            json slots = json::array();
            for (auto& s : x.slots) slots.push_back(slot_to_json(s));
            return json{{"slots", slots}, {"failing", x.failing}};
          },
          [](const ProxyReady& x) { return json{{"config_generation", x.config_generation}}; },
          [](const WorkerHung& x) {
            return json{{"app", x.app}, {"slot", x.slot}, {"generation", x.generation}, {"request_id", x.request_id}};
          },
          [](const ProxyStats& x) {
            json slots = json::array();
            for (auto& s : x.slots)
              slots.push_back({{"app", s.app}, {"slot", s.slot}, {"generation", s.generation},
                               {"in_flight", s.in_flight}, {"requests", s.requests}});
            json out{{"requests", x.requests}, {"in_flight", x.in_flight}, {"queued", x.queued},
                     {"connections", x.connections}, {"slots", slots}};
            if (x.query) out["query"] = x.query;
            if (!x.apps.empty()) {
              json apps = json::array();
              for (auto& a : x.apps)
                apps.push_back({{"app", a.app}, {"requests", a.requests}, {"busy_us", a.busy_us},
                                {"queue_us", a.queue_us}, {"queued", a.queued}, {"rejected", a.rejected},
                                {"peak_in_flight", a.peak_in_flight}});
              out["apps"] = apps;
            }
            return out;
          },
          [](const SlotEvent& x) {
            return json{{"app", x.app}, {"slot", x.slot}, {"generation", x.generation},
                        {"event", kind_name(x.kind)}, {"requests", x.requests}};
          },
          [](const SlotRequestsQuery& x) {
            return json{{"query", x.query}, {"app", x.app}, {"slot", x.slot}, {"generation", x.generation}};
          },
          [](const SlotRequests& x) {
            json reqs = json::array();
            for (auto& r : x.requests) {
              json one{{"id", r.id}, {"method", r.method}, {"path", r.path}, {"elapsed_ms", r.elapsed_ms},
                       {"state", r.state}};
              if (!r.trace_id.empty()) one["trace_id"] = r.trace_id;  // optional: older decoders ignore it
              reqs.push_back(std::move(one));
            }
            return json{{"query", x.query}, {"app", x.app}, {"slot", x.slot}, {"generation", x.generation},
                        {"requests", reqs}};
          },
          [](const StatsQuery& x) { return json{{"query", x.query}}; },
          [](const WorkerFigures& x) { return json{{"figures", x.json}}; },
          [](const SetDraining& x) { return json{{"draining", x.draining}}; },
          [](const AccessLogFile& x) { return json{{"path", x.path}}; },
          [](const Retire&) { return json::object(); },
          [](const AdoptConnections& x) { return json{{"connections", handed_to_json(x.connections)}}; },
          [](const HandoffConnections& x) {
            return json{{"connections", handed_to_json(x.connections)}, {"last", x.last}, {"kept", x.kept}};
          },
      },
      m);
  j["v"] = kProtocolVersion;
  j["type"] = std::string(type_name(m));
  // Strings may hold request bytes (a path cut at kMaxPath, an HTTP/2 :path) that are not
  // UTF-8: replaced by U+FFFD instead of throwing (which would end the process).
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Message> decode(std::string_view bytes) {
  json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::Protocol, "control message is not a JSON object");
  if (!j.contains("v") || !j["v"].is_number_integer() || j["v"] != kProtocolVersion)
    return fail(Errc::Protocol, "control message has an unsupported protocol version");
  if (!j.contains("type") || !j["type"].is_string()) return fail(Errc::Protocol, "control message without type");
  const std::string type = j["type"].get<std::string>();
  // nlohmann throws on mistyped fields; this is the narrow boundary that turns that into an Error.
  try {
    if (type == "set_listeners")
      return Message{SetListeners{j.at("addresses").get<std::vector<std::string>>(), j.value("admin", std::string())}};
    if (type == "worker_figures") return Message{WorkerFigures{j.at("figures").get<std::string>()}};
    if (type == "set_config")
      return Message{SetConfig{u64(j.at("generation")), j.at("snapshot").get<std::string>()}};
    if (type == "set_pool") {
      SetPool p;
      for (auto& s : j.at("slots")) p.slots.push_back(slot_from_json(s));
      if (j.contains("failing")) p.failing = j.at("failing").get<std::vector<std::string>>();
      return Message{std::move(p)};
    }
    if (type == "proxy_ready") return Message{ProxyReady{u64(j.at("config_generation"))}};
    if (type == "worker_hung")
      return Message{WorkerHung{j.at("app").get<std::string>(), i32(j.at("slot")),
                                u64(j.at("generation")), j.at("request_id").get<std::string>()}};
    if (type == "proxy_stats") {
      ProxyStats st{u64(j.at("requests")), u64(j.at("in_flight")),
                    u64(j.at("queued")), u64(j.at("connections")), {}};
      if (j.contains("slots"))
        for (auto& s : j.at("slots"))
          st.slots.push_back(SlotStats{s.at("app").get<std::string>(), i32(s.at("slot")),
                                       u64(s.at("generation")), u64(s.at("in_flight")),
                                       u64(s.at("requests"))});
      st.query = opt_u64(j, "query");
      if (j.contains("apps"))
        for (auto& a : j.at("apps"))
          st.apps.push_back(AppStats{a.at("app").get<std::string>(), u64(a.at("requests")),
                                     u64(a.at("busy_us")), u64(a.at("queue_us")),
                                     u64(a.at("queued")), u64(a.at("rejected")),
                                     u64(a.at("peak_in_flight"))});
      return Message{std::move(st)};
    }
    if (type == "slot_event") {
      SlotEvent e;
      e.app = j.at("app").get<std::string>();
      e.slot = i32(j.at("slot"));
      e.generation = u64(j.at("generation"));
      const std::string kind = j.at("event").get<std::string>();
      if (kind == "drained") e.kind = SlotEvent::Kind::Drained;
      else if (kind == "max_requests") e.kind = SlotEvent::Kind::MaxRequests;
      else if (kind == "refused") e.kind = SlotEvent::Kind::Refused;
      else return fail(Errc::Protocol, "slot_event: unknown event '" + kind + "'");
      e.requests = opt_u64(j, "requests");
      return Message{std::move(e)};
    }
    if (type == "stats_query") return Message{StatsQuery{u64(j.at("query"))}};
    if (type == "set_draining") return Message{SetDraining{j.at("draining").get<bool>()}};
    if (type == "access_log_file") return Message{AccessLogFile{j.at("path").get<std::string>()}};
    if (type == "retire") return Message{Retire{}};
    if (type == "adopt_connections") return Message{AdoptConnections{handed_from_json(j.at("connections"))}};
    if (type == "handoff_connections")
      return Message{HandoffConnections{handed_from_json(j.at("connections")), j.at("last").get<bool>(), u64(j.at("kept"))}};
    if (type == "slot_requests_query")
      return Message{SlotRequestsQuery{u64(j.at("query")), j.at("app").get<std::string>(),
                                       i32(j.at("slot")), u64(j.at("generation"))}};
    if (type == "slot_requests") {
      SlotRequests r{u64(j.at("query")), j.at("app").get<std::string>(), i32(j.at("slot")),
                     u64(j.at("generation")), {}};
      for (auto& x : j.at("requests"))
        r.requests.push_back(SlotRequestInfo{x.at("id").get<std::string>(), x.at("method").get<std::string>(),
                                             x.at("path").get<std::string>(), u64(x.at("elapsed_ms")),
                                             x.at("state").get<std::string>(),
                                             trace_id_field(x)});
      return Message{std::move(r)};
    }
  } catch (const nlohmann::json::exception& e) {
    return fail(Errc::Protocol, "control message '" + type + "': " + e.what());
  }
  return fail(Errc::Protocol, "unknown control message type '" + type + "'");
}

}  // namespace corral::control
