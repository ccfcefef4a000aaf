#include "proxy/admin/status_page.h"

#include <chrono>

#include <nlohmann/json.hpp>

#include "proxy/admin/admin.h"

namespace corral::proxy {

std::string status_json(const AdminService& admin, const Runtime& rt) {
  using nlohmann::json;
  auto now = std::chrono::system_clock::now();
  std::string why = admin.not_ready_reasons(rt);
  json j{{"version", CORRAL_VERSION},
         {"generation", rt.generation},
         {"now_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()},
         {"ready", why.empty()},
         {"not_ready", why},
         {"stopping", admin.stopping()}};
  json listeners = json::array();
  for (const auto& l : rt.listeners) listeners.push_back({{"address", l->address}, {"tls", l->tls != nullptr}});
  j["listeners"] = listeners;
  json routes = json::array();
  for (const auto& e : rt.router.entries())
    routes.push_back({{"host", e.host}, {"path", e.path}, {"app", e.app >= 0 ? rt.apps[static_cast<size_t>(e.app)].name : ""}});
  j["routes"] = routes;
  auto figures = admin.worker_figures();
  json apps = json::array();
  auto totals = admin.app_totals(rt);
  for (size_t i = 0; i < rt.apps.size(); ++i) {
    const auto& a = rt.apps[i];
    json app{{"name", a.name}, {"queued", totals[i].queued}, {"in_flight", totals[i].in_flight},
             {"requests", totals[i].requests}, {"errors", totals[i].errors}};
    json workers = json::array();
    if (figures && figures->contains("apps"))
      for (const auto& f : (*figures)["apps"])
        if (f.value("name", "") == a.name) {
          app["kind"] = f.value("kind", "");
          app["exits"] = f.value("deaths", json::object());
          app["recent_deaths"] = f.value("recent_deaths", json::array());
          for (const auto& w : f.value("workers", json::array())) {
            json ww = w;
            for (const auto& s : a.dispatcher->slots())
              if (s.slot == w.value("id", -1) && !s.removed) ww["in_flight"] = s.in_flight;
            workers.push_back(ww);
          }
        }
    app["workers"] = workers;
    apps.push_back(app);
  }
  j["apps"] = apps;
  json series = json::object();
  for (const auto& [name, pts] : admin.history().series()) {
    json arr = json::array();
    for (const auto& p : pts)
      arr.push_back({{"t", p.t_ms}, {"rate", p.rate}, {"errors", p.errors}, {"p50", p.p50}, {"p90", p.p90},
                     {"p99", p.p99}, {"queued", p.queued}, {"in_flight", p.in_flight}});
    series[name] = arr;
  }
  j["series"] = series;
  auto at = admin.worker_figures_time();
  j["figures_age_ms"] = at == std::chrono::steady_clock::time_point{}
                            ? -1
                            : std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - at).count();
  return j.dump();
}

std::string_view status_page_html() {
  return "<!doctype html><html><head><meta charset=\"utf-8\"><title>corral status</title></head>"
         "<body><h1>corral</h1><p>See <a href=\"status.json\">status.json</a>.</p></body></html>\n";
}

std::string_view status_page_csp() { return "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"; }

}  // namespace corral::proxy
