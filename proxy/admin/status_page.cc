#include "proxy/admin/status_page.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <charconv>

#include "proxy/admin/admin.h"
#include "proxy/admin/status_page_html.h"  // generated from status_page.html: kStatusPageHtml
#include "proxy/static/static_site.h"

namespace corral::proxy {
namespace {

using nlohmann::json;

const char* kind_name(conf::AppKind k) {
  switch (k) {
    case conf::AppKind::Http: return "http";
    case conf::AppKind::Fastcgi: return "fastcgi";
    case conf::AppKind::Cgi: return "cgi";
    case conf::AppKind::Wsgi: return "wsgi";
  }
  return "http";
}

// The supervisor's object for app `name` in the figures (a running app before a removed one
// of the same name that still drains); null when it has none.
const json* figures_app(const json* figures, const std::string& name) {
  if (!figures || !figures->is_object()) return nullptr;
  auto apps = figures->find("apps");
  if (apps == figures->end() || !apps->is_array()) return nullptr;
  const json* found = nullptr;
  for (const auto& a : *apps) {
    if (!a.is_object() || a.value("name", std::string()) != name) continue;
    if (!a.value("removed", false)) return &a;
    found = &a;
  }
  return found;
}

json figure(const json& obj, const char* key, json fallback) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? fallback : *it;
}

json workers_json(const json* fa, const std::vector<SlotState>& slots) {
  json out = json::array();
  auto live = [&](int id, uint64_t incarnation) -> const SlotState* {
    for (const auto& s : slots)
      if (s.slot == id && s.generation == incarnation) return &s;
    return nullptr;
  };
  const json* ws = nullptr;
  if (fa) {
    auto it = fa->find("workers");
    if (it != fa->end() && it->is_array()) ws = &*it;
  }
  if (!ws) {
    // No figures yet: what the dispatcher knows (the workers that take requests).
    for (const auto& s : slots) {
      if (s.removed) continue;
      out.push_back({{"id", s.slot}, {"pid", 0}, {"generation", nullptr},
                     {"state", s.accepting && !s.hung ? "ready" : "draining"}, {"in_flight", s.in_flight},
                     {"requests", s.requests}, {"rss", nullptr}, {"cpu_seconds", nullptr},
                     {"uptime_seconds", nullptr}, {"restarts", nullptr}});
    }
    return out;
  }
  for (const auto& w : *ws) {
    if (!w.is_object()) continue;
    const int id = w.value("id", -1);
    const SlotState* s = live(id, w.value("incarnation", uint64_t{0}));
    // A worker restarted in place keeps its socket: what was sent to its previous process
    // and is still in flight (resent on a fresh connection) is on this one now.
    int in_flight = 0;
    for (const auto& e : slots)
      if (e.slot == id) in_flight += e.in_flight;
    out.push_back({{"id", id},
                   {"pid", figure(w, "pid", 0)},
                   {"generation", figure(w, "generation", nullptr)},
                   {"state", figure(w, "state", "")},
                   // The dispatcher's counts are live; the figures' are up to a second old.
                   {"in_flight", in_flight},
                   {"requests", s ? json(s->requests) : figure(w, "requests", 0)},
                   {"rss", figure(w, "rss", nullptr)},
                   {"cpu_seconds", figure(w, "cpu_seconds", nullptr)},
                   {"uptime_seconds", figure(w, "uptime_seconds", nullptr)},
                   {"restarts", figure(w, "restarts", 0)}});
  }
  return out;
}

std::string base64(const unsigned char* p, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), p, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

// "'sha256-…'" for each `<tag>…</tag>` element of the page (the CSP source of an inline block).
std::string inline_hashes(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  std::string out;
  for (size_t at = page.find(open); at != std::string_view::npos; at = page.find(open, at)) {
    const size_t begin = at + open.size();
    const size_t end = page.find(close, begin);
    if (end == std::string_view::npos) break;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(page.data() + begin), end - begin, digest);
    if (!out.empty()) out += ' ';
    out += "'sha256-" + base64(digest, sizeof digest) + "'";
    at = end + close.size();
  }
  return out.empty() ? "'none'" : out;
}

}  // namespace

std::string status_json(const StatusInputs& in, const Runtime& rt, int64_t since_ms) {
  json listeners = json::array();
  for (const auto& l : rt.listeners) listeners.push_back({{"address", l->address}, {"tls", l->tls || l->tls_failed}});
  json routes = json::array();
  for (const auto& e : rt.router.entries()) {
    const bool known = e.app >= 0 && static_cast<size_t>(e.app) < rt.apps.size();
    json r = {{"host", e.host}, {"path", e.path.empty() ? "/" : e.path},
              {"app", known ? rt.apps[static_cast<size_t>(e.app)].name : std::string()}};
    if (e.static_site) {  // a static route: its folder, and the app of what no file matches
      r["static"] = e.static_site->root();
      if (e.fallback >= 0 && static_cast<size_t>(e.fallback) < rt.apps.size())
        r["app"] = rt.apps[static_cast<size_t>(e.fallback)].name;
    }
    routes.push_back(std::move(r));
  }
  json apps = json::array();
  json series = json::object();
  for (const auto& a : rt.apps) {
    std::vector<SlotState> slots;
    uint64_t queued = 0;
    if (a.dispatcher) {
      slots = a.dispatcher->slots();
      queued = a.dispatcher->queued();
    }
    uint64_t in_flight = 0;
    for (const auto& s : slots) in_flight += static_cast<uint64_t>(s.in_flight);
    const json* fa = figures_app(in.figures, a.name);
    AppTotals totals;
    if (auto t = in.totals.find(a.name); t != in.totals.end()) totals = t->second;
    apps.push_back({{"name", a.name},
                    {"kind", kind_name(a.kind)},
                    {"queued", queued},
                    {"in_flight", in_flight},
                    {"requests", totals.requests},
                    {"errors", totals.errors},
                    {"workers", workers_json(fa, slots)},
                    {"exits", fa ? figure(*fa, "deaths", json::object()) : json::object()},
                    {"recent_deaths", fa ? figure(*fa, "recent_deaths", json::array()) : json::array()}});
    json points = json::array();
    if (auto s = in.series.find(a.name); s != in.series.end()) {
      for (const auto& p : s->second) {
        if (p.t_ms <= since_ms) continue;
        points.push_back({{"t", p.t_ms},
                          {"rate", p.rate},
                          {"errors", p.errors},
                          {"p50", p.p50},
                          {"p90", p.p90},
                          {"p99", p.p99},
                          {"queued", p.queued},
                          {"in_flight", p.in_flight}});
      }
    }
    series[a.name] = std::move(points);
  }
  json out = {{"version", CORRAL_VERSION},
              {"generation", rt.generation},
              {"now_ms", in.now_ms},
              {"started_ms", in.started_ms},
              {"ready", in.ready},
              {"not_ready", in.not_ready},
              {"stopping", in.stopping},
              {"draining", in.draining},
              {"listeners", std::move(listeners)},
              {"routes", std::move(routes)},
              {"apps", std::move(apps)},
              {"series", std::move(series)},
              {"figures_age_ms", in.figures_age_ms ? json(*in.figures_age_ms) : json(nullptr)}};
  // Request paths in death records are client bytes: never let invalid UTF-8 fail the page.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string status_json(const AdminService& admin, const Runtime& rt, int64_t since_ms) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  StatusInputs in;
  in.now_ms = duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  in.started_ms = duration_cast<milliseconds>(admin.started().time_since_epoch()).count();
  in.not_ready = admin.not_ready_reasons(rt);
  // One line per reason; one line on the page.
  while (!in.not_ready.empty() && in.not_ready.back() == '\n') in.not_ready.pop_back();
  for (size_t at = in.not_ready.find('\n'); at != std::string::npos; at = in.not_ready.find('\n', at))
    in.not_ready.replace(at, 1, "; ");
  in.ready = in.not_ready.empty();
  in.stopping = admin.stopping();
  in.draining = admin.draining();
  const std::shared_ptr<const nlohmann::json> figures = admin.worker_figures();
  in.figures = figures.get();
  if (figures)
    in.figures_age_ms = duration_cast<milliseconds>(std::chrono::steady_clock::now() - admin.worker_figures_time()).count();
  for (const auto& t : admin.app_totals(rt)) in.totals[t.app] = {t.requests, t.errors};
  for (const auto& [app, points] : admin.history().series()) {
    auto& out = in.series[app];
    out.reserve(points.size());
    for (const auto& p : points)
      if (p.t_ms > since_ms) out.push_back({p.t_ms, p.rate, p.errors, p.p50, p.p90, p.p99, p.queued, p.in_flight});
  }
  return status_json(in, rt, since_ms);
}

int64_t status_since(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return 0;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (kv.substr(0, 6) == "since=") {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(kv.data() + 6, kv.data() + kv.size(), v);
      return ec == std::errc() && end == kv.data() + kv.size() && v > 0 ? v : 0;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return 0;
}

std::string_view status_page_html() { return kStatusPageHtml; }

std::string_view status_page_csp() {
  static const std::string csp = "default-src 'none'; script-src " + inline_hashes(kStatusPageHtml, "script") +
                                 "; style-src " + inline_hashes(kStatusPageHtml, "style") +
                                 "; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                                 "frame-ancestors 'none'";
  return csp;
}

}  // namespace corral::proxy
