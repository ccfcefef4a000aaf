#include "proxy/admin/admin.h"

#include <algorithm>
#include <map>

#include "common/base/log.h"
#include "proxy/admin/status_page.h"
#include "proxy/tls_context.h"

namespace corral::proxy {
namespace {
using metrics::append_label_value;
using metrics::append_value;

// One metric family: HELP and TYPE lines, then samples added with sample().
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) : out_(out), name_(name) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;
  template <typename V>
  void sample(Labels labels, V value, std::string_view suffix = {}, std::string_view extra_name = {},
              std::string_view extra_value = {}) {
    out_ += name_;
    out_ += suffix;
    bool any = labels.size() > 0 || !extra_name.empty();
    if (any) {
      out_ += '{';
      bool first = true;
      for (auto& [k, v] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        append_label_value(out_, v);
        out_ += '"';
      }
      if (!extra_name.empty()) {
        if (!first) out_ += ',';
        out_ += extra_name;
        out_ += "=\"";
        out_ += extra_value;
        out_ += '"';
      }
      out_ += '}';
    }
    out_ += ' ';
    append_value(out_, value);
    out_ += '\n';
  }
  /// A histogram's _bucket, _sum and _count samples.
  void histogram(Labels labels, const metrics::HistogramTotals& h) {
    uint64_t cumulative = 0;
    char le[32];
    for (size_t i = 0; i < metrics::kBucketCount; ++i) {
      cumulative += h.buckets[i];
      std::string_view bound = "+Inf";
      if (i < metrics::kBuckets.size()) {
        std::string tmp;
        append_value(tmp, metrics::kBuckets[i]);
        size_t n = std::min(tmp.size(), sizeof le - 1);
        tmp.copy(le, n);
        bound = std::string_view(le, n);
      }
      sample(labels, cumulative, "_bucket", "le", bound);
    }
    sample(labels, static_cast<double>(h.sum_us) / 1e6, "_sum");
    sample(labels, cumulative, "_count");
  }

 private:
  std::string& out_;
  std::string_view name_;
};

// A JSON number as uint64/double, 0 when absent or of another type.
double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<double>();
}

std::string str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
  return {};
}

bool slot_usable(const SlotState& s) { return s.accepting && !s.removed && !s.hung; }

}  // namespace

AdminService::AdminService() : history_(std::make_unique<StatusHistory>()) {}
AdminService::~AdminService() = default;

void AdminService::set_loops(std::vector<const metrics::LoopCounters*> loops) { loops_ = std::move(loops); }

void AdminService::set_worker_figures(std::string json) {
  auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    CORRAL_LOG(Warn, "admin") << "worker figures are not a JSON object; ignored";
    return;
  }
  auto shared = std::make_shared<const nlohmann::json>(std::move(doc));
  std::lock_guard<std::mutex> g(mu_);
  figures_ = std::move(shared);
  figures_at_ = std::chrono::steady_clock::now();
}

std::shared_ptr<const nlohmann::json> AdminService::worker_figures() const {
  std::lock_guard<std::mutex> g(mu_);
  return figures_;
}

std::chrono::steady_clock::time_point AdminService::worker_figures_time() const {
  std::lock_guard<std::mutex> g(mu_);
  return figures_at_;
}

void AdminService::set_runtime(std::shared_ptr<const Runtime> rt) {
  std::lock_guard<std::mutex> g(mu_);
  runtime_ = std::move(rt);
}

std::shared_ptr<const Runtime> AdminService::runtime() const {
  std::lock_guard<std::mutex> g(mu_);
  return runtime_;
}

std::string AdminService::not_ready_reasons(const Runtime& rt) const {
  std::string why;
  if (stopping()) why += "stopping\n";
  else if (draining()) why += "draining\n";
  for (const auto& a : rt.apps) {
    bool any = false;
    for (const auto& s : a.dispatcher->slots()) any = any || slot_usable(s);
    if (!any) why += "app " + a.name + ": no ready worker\n";
  }
  return why;
}

LocalResponse AdminService::handle(std::string_view method, std::string_view target, const Runtime& rt) const {
  LocalResponse r;
  r.headers.emplace_back("Cache-Control", "no-store");
  std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    r.headers.emplace_back("Allow", "GET, HEAD");
    r.body = "method not allowed: the admin listener answers GET and HEAD\n";
    return r;
  }
  if (path == "/metrics") {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = render_metrics(rt);
  } else if (path == "/healthz") {
    r.body = "ok\n";
  } else if (path == "/readyz") {
    std::string why = not_ready_reasons(rt);
    if (why.empty()) {
      r.body = "ready\n";
    } else {
      r.status = 503;
      r.body = "not ready\n" + why;
    }
  } else if (path == "/status.json") {
    r.content_type = "application/json";
    r.body = status_json(*this, rt, status_since(target));
  } else if (path == "/status" || path == "/") {
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(status_page_html());
    r.headers.emplace_back("Content-Security-Policy", std::string(status_page_csp()));
  } else {
    r.status = 404;
    r.body = "not found: the admin listener serves /metrics, /healthz, /readyz, /status and /status.json\n";
  }
  return r;
}

std::vector<AdminService::AppTotals> AdminService::app_totals(const Runtime& rt) const {
  std::vector<AppTotals> out(rt.apps.size());
  for (size_t i = 0; i < rt.apps.size(); ++i) {
    out[i].app = rt.apps[i].name;
    out[i].queued = rt.apps[i].dispatcher->queued();
    for (const auto& s : rt.apps[i].dispatcher->slots()) out[i].in_flight += static_cast<uint64_t>(s.in_flight);
  }
  for (const auto& e : rt.router.entries()) {
    if (!e.metrics || e.app < 0 || static_cast<size_t>(e.app) >= out.size()) continue;
    AppTotals& t = out[static_cast<size_t>(e.app)];
    for (size_t th = 0; th < e.metrics->counters.size(); ++th) {
      const auto& c = e.metrics->counters.at(th);
      for (size_t p = 0; p < metrics::kProtocols; ++p) {
        for (size_t k = 0; k < metrics::kStatusClasses; ++k) t.requests += c.requests[p][k].get();
        t.errors += c.requests[p][4].get();
      }
      t.duration.add(c.duration);
    }
  }
  return out;
}

std::string AdminService::render_metrics(const Runtime& rt) const {
  std::string out;
  out.reserve(16 * 1024);
  {
    Family f(out, "corral_build_info", "gauge", "corral's version (always 1).");
    f.sample({{"version", CORRAL_VERSION}}, uint64_t{1});
  }
  {
    Family f(out, "corral_config_generation", "gauge", "Generation of the configuration the proxy serves.");
    f.sample({}, rt.generation);
  }
  {
    Family f(out, "corral_proxy_start_time_seconds", "gauge", "When the proxy started, in seconds since the epoch.");
    f.sample({}, std::chrono::duration<double>(started_.time_since_epoch()).count());
  }
  {
    Family f(out, "corral_ready", "gauge", "1 when /readyz answers 200 (config applied, every app has a ready worker).");
    f.sample({}, uint64_t{not_ready_reasons(rt).empty() ? 1u : 0u});
  }
  {
    Family f(out, "corral_draining", "gauge",
             "1 while draining (corralctl drain, or the drain_delay of a stop): /readyz fails, keep-alive ends, the listeners keep serving.");
    f.sample({}, uint64_t{draining() ? 1u : 0u});
  }

  // ---- per app and route ----
  struct RouteSums {
    const metrics::RouteMetrics* m;
    uint64_t requests[metrics::kProtocols][metrics::kStatusClasses]{};
    uint64_t rejected[metrics::kQueueRejects]{};
    metrics::HistogramTotals duration, queue, upstream;
  };
  std::vector<RouteSums> routes;
  for (const auto& e : rt.router.entries()) {
    if (!e.metrics) continue;
    RouteSums s{e.metrics.get()};
    for (size_t th = 0; th < e.metrics->counters.size(); ++th) {
      const auto& c = e.metrics->counters.at(th);
      for (size_t p = 0; p < metrics::kProtocols; ++p)
        for (size_t k = 0; k < metrics::kStatusClasses; ++k) s.requests[p][k] += c.requests[p][k].get();
      for (size_t k = 0; k < metrics::kQueueRejects; ++k) s.rejected[k] += c.rejected[k].get();
      s.duration.add(c.duration);
      s.queue.add(c.queue);
      s.upstream.add(c.upstream);
    }
    routes.push_back(s);
  }
  {
    Family f(out, "corral_requests_total", "counter",
             "Requests routed to an app, by app, route, status class and client protocol.");
    for (auto& s : routes)
      for (size_t p = 0; p < metrics::kProtocols; ++p)
        for (size_t k = 0; k < metrics::kStatusClasses; ++k)
          f.sample({{"app", s.m->app},
                    {"route", s.m->route},
                    {"code", metrics::status_class_label(k)},
                    {"protocol", metrics::protocol_label(static_cast<metrics::Protocol>(p))}},
                   s.requests[p][k]);
  }
  {
    Family f(out, "corral_request_duration_seconds", "histogram",
             "Time from the first byte of a request to the end of its response, by app and route.");
    for (auto& s : routes) f.histogram({{"app", s.m->app}, {"route", s.m->route}}, s.duration);
  }
  {
    Family f(out, "corral_queue_time_seconds", "histogram",
             "Time a request waited for a free worker, by app and route.");
    for (auto& s : routes) f.histogram({{"app", s.m->app}, {"route", s.m->route}}, s.queue);
  }
  {
    Family f(out, "corral_upstream_time_seconds", "histogram",
             "Time from sending a request to a worker to the end of the worker's response, by app and route.");
    for (auto& s : routes) f.histogram({{"app", s.m->app}, {"route", s.m->route}}, s.upstream);
  }
  {
    Family f(out, "corral_queue_rejections_total", "counter",
             "Requests answered 503 without reaching a worker, by app, route and cause.");
    for (auto& s : routes)
      for (size_t k = 0; k < metrics::kQueueRejects; ++k)
        f.sample({{"app", s.m->app},
                  {"route", s.m->route},
                  {"cause", metrics::queue_reject_label(static_cast<metrics::QueueReject>(k))}},
                 s.rejected[k]);
  }
  {
    Family f(out, "corral_compressed_responses_total", "counter",
             "Responses the proxy compressed (route key compress), by app, route and coding.");
    for (auto& s : routes) {
      uint64_t n[2]{};
      for (size_t th = 0; th < s.m->counters.size(); ++th)
        for (size_t k = 0; k < 2; ++k) n[k] += s.m->counters.at(th).compressed[k].get();
      f.sample({{"app", s.m->app}, {"route", s.m->route}, {"coding", "gzip"}}, n[0]);
      f.sample({{"app", s.m->app}, {"route", s.m->route}, {"coding", "br"}}, n[1]);
    }
  }
  {
    Family f(out, "corral_compression_bytes_total", "counter",
             "Body bytes of the responses the proxy compressed, by app, route and direction (in = from the worker, out = to the client).");
    for (auto& s : routes) {
      uint64_t in = 0, sent = 0;
      for (size_t th = 0; th < s.m->counters.size(); ++th) {
        in += s.m->counters.at(th).compress_bytes_in.get();
        sent += s.m->counters.at(th).compress_bytes_out.get();
      }
      f.sample({{"app", s.m->app}, {"route", s.m->route}, {"direction", "in"}}, in);
      f.sample({{"app", s.m->app}, {"route", s.m->route}, {"direction", "out"}}, sent);
    }
  }
  {
    Family f(out, "corral_queue_depth", "gauge", "Requests waiting for a free worker now, by app.");
    for (const auto& a : rt.apps) f.sample({{"app", a.name}}, static_cast<uint64_t>(a.dispatcher->queued()));
  }
  {
    // Open tunnels, their total and their bytes come from the app's dispatcher (a tunnel is
    // a lease; the dispatcher lives as long as the app, whatever reloads do to its routes).
    Family open(out, "corral_tunnels_open", "gauge", "WebSocket/Upgrade tunnels open now, by app.");
    for (const auto& a : rt.apps) open.sample({{"app", a.name}}, a.dispatcher->tunnels_open());
  }
  {
    Family f(out, "corral_tunnels_total", "counter", "Requests that became tunnels (the worker answered 101), by app.");
    for (const auto& a : rt.apps) f.sample({{"app", a.name}}, a.dispatcher->totals().tunnels);
  }
  {
    Family f(out, "corral_tunnel_bytes_total", "counter",
             "Bytes relayed through tunnels, by app and direction (up = client to worker, down = worker to client).");
    for (const auto& a : rt.apps) {
      const AppDispatcher::TunnelByteTotals t = a.dispatcher->tunnel_bytes_total();
      f.sample({{"app", a.name}, {"direction", "up"}}, t.up);
      f.sample({{"app", a.name}, {"direction", "down"}}, t.down);
    }
  }
  {
    Family f(out, "corral_worker_in_flight", "gauge", "Requests a worker is serving now, by app and worker id.");
    for (const auto& a : rt.apps)
      for (const auto& s : a.dispatcher->slots()) {
        if (s.removed) continue;
        std::string id = std::to_string(s.slot);
        f.sample({{"app", a.name}, {"worker", id}}, static_cast<uint64_t>(s.in_flight));
      }
  }
  {
    Family f(out, "corral_worker_concurrency", "gauge", "Requests a worker may serve at once, by app and worker id.");
    for (const auto& a : rt.apps)
      for (const auto& s : a.dispatcher->slots()) {
        if (s.removed) continue;
        std::string id = std::to_string(s.slot);
        f.sample({{"app", a.name}, {"worker", id}}, static_cast<uint64_t>(s.concurrency));
      }
  }

  // ---- workers, from the supervisor ----
  auto figures = worker_figures();
  static const char* const kStates[] = {"starting", "ready", "draining", "stopping", "backoff", "stopped"};
  {
    Family f(out, "corral_workers", "gauge", "Worker processes by app and state (from the supervisor).");
    if (figures && figures->contains("apps") && (*figures)["apps"].is_array())
      for (const auto& app : (*figures)["apps"]) {
        std::string name = str(app, "name");
        std::map<std::string, uint64_t> by_state;
        for (auto* s : kStates) by_state[s] = 0;
        if (app.contains("workers") && app["workers"].is_array())
          for (const auto& w : app["workers"]) ++by_state[str(w, "state")];
        for (auto& [state, n] : by_state) f.sample({{"app", name}, {"state", state}}, n);
      }
  }
  {
    Family f(out, "corral_worker_exits_total", "counter",
             "Worker process exits by app and reason (the death records' reasons, from the supervisor).");
    if (figures && figures->contains("apps") && (*figures)["apps"].is_array())
      for (const auto& app : (*figures)["apps"]) {
        std::string name = str(app, "name");
        auto it = app.find("deaths");
        if (it == app.end() || !it->is_object()) continue;
        for (auto d = it->begin(); d != it->end(); ++d)
          if (d->is_number()) f.sample({{"app", name}, {"reason", d.key()}}, d->get<uint64_t>());
      }
  }
  auto per_worker = [&](const char* metric, const char* type, const char* help, const char* key) {
    Family f(out, metric, type, help);
    if (!figures || !figures->contains("apps") || !(*figures)["apps"].is_array()) return;
    for (const auto& app : (*figures)["apps"]) {
      std::string name = str(app, "name");
      if (!app.contains("workers") || !app["workers"].is_array()) continue;
      for (const auto& w : app["workers"]) {
        if (num(w, "pid") <= 0) continue;
        std::string id = str(w, "id");
        f.sample({{"app", name}, {"worker", id}}, num(w, key));
      }
    }
  };
  per_worker("corral_worker_pss_bytes", "gauge",
             "Proportional set size of a worker and the processes it forked, by app and worker id.", "rss");
  per_worker("corral_worker_cpu_seconds_total", "counter",
             "CPU time (user + system) of a worker's current process and its children, by app and worker id.",
             "cpu_seconds");
  per_worker("corral_worker_requests_total", "counter",
             "Requests sent to a worker's current process, by app and worker id.", "requests");
  {
    Family f(out, "corral_worker_figures_age_seconds", "gauge", "Age of the worker figures above.");
    auto at = worker_figures_time();
    double age = at == std::chrono::steady_clock::time_point{}
                     ? -1
                     : std::chrono::duration<double>(std::chrono::steady_clock::now() - at).count();
    f.sample({}, age);
  }

  // ---- listeners ----
  struct ListenerSums {
    const metrics::ListenerMetrics* m;
    bool tls = false;
    uint64_t accepted = 0, handshakes = 0, bytes_in = 0, bytes_out = 0;
    uint64_t refused[4]{};
    bool proxy_protocol = false;
    bool limited = false;  ///< a client listener (the admin listener has no limits)
    int64_t open[metrics::kConnProtocols]{};
    uint64_t tls_failures[metrics::kTlsFailures]{};
  };
  std::vector<ListenerSums> ls;
  auto add_listener = [&](const ListenerRuntime& l) {
    if (!l.metrics) return;
    ListenerSums s{l.metrics.get(), l.tls != nullptr};
    for (size_t th = 0; th < l.metrics->counters.size(); ++th) {
      const auto& c = l.metrics->counters.at(th);
      s.accepted += c.accepted.get();
      s.handshakes += c.tls_handshakes.get();
      s.bytes_in += c.bytes_in.get();
      s.bytes_out += c.bytes_out.get();
      for (size_t k = 0; k < metrics::kConnProtocols; ++k) s.open[k] += c.open[k].get();
      for (size_t k = 0; k < metrics::kTlsFailures; ++k) s.tls_failures[k] += c.tls_failures[k].get();
      for (size_t k = 0; k < 4; ++k) s.refused[k] += c.refused[k].get();
    }
    s.limited = l.limiter != nullptr;
    s.proxy_protocol = l.proxy_protocol;
    ls.push_back(s);
  };
  for (const auto& l : rt.listeners) add_listener(*l);
  if (rt.admin_listener) add_listener(*rt.admin_listener);
  {
    Family f(out, "corral_connections", "gauge",
             "Open client connections by listener and protocol (pending = TLS handshake or first bytes).");
    for (auto& s : ls)
      for (size_t k = 0; k < metrics::kConnProtocols; ++k)
        f.sample({{"listener", s.m->listener}, {"protocol", metrics::conn_protocol_label(static_cast<metrics::ConnProtocol>(k))}},
                 static_cast<uint64_t>(std::max<int64_t>(0, s.open[k])));
  }
  {
    Family f(out, "corral_connections_accepted_total", "counter", "Client connections accepted, by listener.");
    for (auto& s : ls) f.sample({{"listener", s.m->listener}}, s.accepted);
  }
  {
    Family f(out, "corral_connections_refused_total", "counter",
             "Client connections reset as soon as they were accepted, by listener and the limit they hit "
             "(max_connections, max_connections_per_client), or closed for the PROXY protocol: a peer outside "
             "proxy_protocol_trusted (proxy_protocol_untrusted), a missing, malformed or late header (proxy_protocol_invalid).");
    for (auto& s : ls)
      if (s.limited) {
        f.sample({{"listener", s.m->listener}, {"reason", "max_connections"}}, s.refused[0]);
        f.sample({{"listener", s.m->listener}, {"reason", "max_connections_per_client"}}, s.refused[1]);
        if (s.proxy_protocol) {
          f.sample({{"listener", s.m->listener}, {"reason", "proxy_protocol_untrusted"}}, s.refused[2]);
          f.sample({{"listener", s.m->listener}, {"reason", "proxy_protocol_invalid"}}, s.refused[3]);
        }
      }
  }
  {
    Family f(out, "corral_tls_handshakes_total", "counter", "Completed TLS handshakes, by listener.");
    for (auto& s : ls)
      if (s.tls) f.sample({{"listener", s.m->listener}}, s.handshakes);
  }
  {
    Family f(out, "corral_tls_handshake_failures_total", "counter", "Failed TLS handshakes, by listener and reason.");
    for (auto& s : ls)
      if (s.tls)
        for (size_t k = 0; k < metrics::kTlsFailures; ++k)
          f.sample({{"listener", s.m->listener}, {"reason", metrics::tls_failure_label(static_cast<metrics::TlsFailure>(k))}},
                   s.tls_failures[k]);
  }
  {
    Family f(out, "corral_received_bytes_total", "counter", "Bytes read from clients (after TLS), by listener.");
    for (auto& s : ls) f.sample({{"listener", s.m->listener}}, s.bytes_in);
  }
  {
    Family f(out, "corral_sent_bytes_total", "counter", "Bytes written to clients (before TLS), by listener.");
    for (auto& s : ls) f.sample({{"listener", s.m->listener}}, s.bytes_out);
  }

  // ---- per loop ----
  uint64_t h2_streams = 0;
  uint64_t bodies_spilled = 0, body_spilled_bytes = 0, body_temp_errors = 0, bodies_streamed = 0;
  uint64_t access_log_dropped = 0;
  uint64_t goaway_sent[metrics::kH2Errors]{}, goaway_received[metrics::kH2Errors]{};
  uint64_t rst_sent[metrics::kH2Errors]{}, rst_received[metrics::kH2Errors]{};
  struct RejectKey {
    std::string reason;
    int status;
    size_t protocol;
    bool operator<(const RejectKey& o) const {
      return std::tie(reason, status, protocol) < std::tie(o.reason, o.status, o.protocol);
    }
  };
  std::map<RejectKey, uint64_t> rejects;
  for (const auto* lc : loops_) {
    h2_streams += lc->h2_streams.get();
    bodies_spilled += lc->bodies_spilled.get();
    body_spilled_bytes += lc->body_spilled_bytes.get();
    body_temp_errors += lc->body_temp_errors.get();
    bodies_streamed += lc->bodies_streamed.get();
    access_log_dropped += lc->access_log_dropped.get();
    for (size_t k = 0; k < metrics::kH2Errors; ++k) {
      goaway_sent[k] += lc->goaway_sent[k].get();
      goaway_received[k] += lc->goaway_received[k].get();
      rst_sent[k] += lc->rst_sent[k].get();
      rst_received[k] += lc->rst_received[k].get();
    }
    size_t used = lc->reject_slots_used.load(std::memory_order_acquire);
    for (size_t i = 0; i < used; ++i) {
      const auto& slot = lc->rejects[i];
      const char* reason = slot.reason.load(std::memory_order_relaxed);
      if (!reason) continue;
      for (size_t p = 0; p < metrics::kProtocols; ++p)
        rejects[{metrics::reason_label(reason), slot.status.load(std::memory_order_relaxed), p}] += slot.count[p].get();
    }
  }
  {
    Family f(out, "corral_rejected_requests_total", "counter",
             "Requests answered by the proxy before any app saw them (malformed, over a limit, no route), by reason, "
             "status and protocol.");
    for (auto& [k, n] : rejects) {
      std::string status = k.status ? std::to_string(k.status) : "reset";
      f.sample({{"reason", k.reason},
                {"status", status},
                {"protocol", metrics::protocol_label(static_cast<metrics::Protocol>(k.protocol))}},
               n);
    }
  }
  {
    Family f(out, "corral_h2_streams_total", "counter", "HTTP/2 streams opened by clients.");
    f.sample({}, h2_streams);
  }
  {
    Family f(out, "corral_request_bodies_spilled_total", "counter",
             "Request bodies larger than client_body_buffer_size, written to a temp file in temp_dir.");
    f.sample({}, bodies_spilled);
  }
  {
    Family f(out, "corral_request_body_spilled_bytes_total", "counter", "Bytes written to request-body temp files.");
    f.sample({}, body_spilled_bytes);
  }
  {
    Family f(out, "corral_request_body_temp_errors_total", "counter",
             "Request-body temp files that could not be created or written (answered 500).");
    f.sample({}, body_temp_errors);
  }
  {
    Family f(out, "corral_access_log_dropped_lines_total", "counter",
             "Access-log lines that could not be written (disk full, file size limit, I/O error) and were dropped.");
    f.sample({}, access_log_dropped);
  }
  {
    Family f(out, "corral_request_bodies_streamed_total", "counter",
             "Request bodies streamed to a worker as they arrived (request_buffering = false).");
    f.sample({}, bodies_streamed);
  }
  {
    Family f(out, "corral_accept_pauses_total", "counter",
             "Times a loop stopped accepting for a short back-off because accept() failed for want of file "
             "descriptors (EMFILE, ENFILE) or memory (ENOBUFS, ENOMEM).");
    uint64_t pauses = 0;
    for (const auto* lc : loops_) pauses += lc->accept_pauses.get();
    f.sample({}, pauses);
  }
  {
    Family f(out, "corral_connections_adopted_total", "counter",
             "Idle client connections this proxy took over from the proxy it replaced (corralctl restart-proxy).");
    uint64_t adopted = 0;
    for (const auto* lc : loops_) adopted += lc->connections_adopted.get();
    f.sample({}, adopted);
  }
  {
    Family f(out, "corral_h2_goaways_total", "counter", "HTTP/2 GOAWAY frames by direction and error code.");
    for (size_t k = 0; k < metrics::kH2Errors; ++k) {
      f.sample({{"direction", "sent"}, {"error", metrics::h2_error_label(k)}}, goaway_sent[k]);
      f.sample({{"direction", "received"}, {"error", metrics::h2_error_label(k)}}, goaway_received[k]);
    }
  }
  {
    Family f(out, "corral_h2_stream_resets_total", "counter", "HTTP/2 RST_STREAM frames by direction and error code.");
    for (size_t k = 0; k < metrics::kH2Errors; ++k) {
      f.sample({{"direction", "sent"}, {"error", metrics::h2_error_label(k)}}, rst_sent[k]);
      f.sample({{"direction", "received"}, {"error", metrics::h2_error_label(k)}}, rst_received[k]);
    }
  }
  return out;
}

// ---- StatusHistory ----

void StatusHistory::sample(const std::vector<AdminService::AppTotals>& totals, std::chrono::system_clock::time_point now) {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::pair<std::string, Series>> next;
  next.reserve(totals.size());
  for (const auto& t : totals) {
    Series s;
    for (auto& [name, old] : apps_)
      if (name == t.app) {
        s = std::move(old);
        break;
      }
    if (s.points.empty()) s.points.resize(kPoints);
    if (s.last_at != std::chrono::system_clock::time_point{}) {
      double dt = std::chrono::duration<double>(now - s.last_at).count();
      if (dt <= 0) dt = 1;
      Point p;
      p.t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
      uint64_t req = t.requests >= s.last.requests ? t.requests - s.last.requests : 0;
      uint64_t err = t.errors >= s.last.errors ? t.errors - s.last.errors : 0;
      p.rate = static_cast<double>(req) / dt;
      p.errors = static_cast<double>(err) / dt;
      auto d = t.duration.minus(s.last.duration);
      p.p50 = d.quantile(0.5);
      p.p90 = d.quantile(0.9);
      p.p99 = d.quantile(0.99);
      p.queued = t.queued;
      p.in_flight = t.in_flight;
      s.points[s.next] = p;
      s.next = (s.next + 1) % kPoints;
      if (s.next == 0) s.full = true;
    }
    s.last = t;
    s.last_at = now;
    next.emplace_back(t.app, std::move(s));
  }
  apps_ = std::move(next);
}

std::vector<std::pair<std::string, std::vector<StatusHistory::Point>>> StatusHistory::series() const {
  std::lock_guard<std::mutex> g(mu_);
  std::vector<std::pair<std::string, std::vector<Point>>> out;
  for (const auto& [name, s] : apps_) {
    std::vector<Point> pts;
    if (s.full)
      for (size_t i = s.next; i < kPoints; ++i) pts.push_back(s.points[i]);
    for (size_t i = 0; i < s.next; ++i) pts.push_back(s.points[i]);
    out.emplace_back(name, std::move(pts));
  }
  return out;
}

}  // namespace corral::proxy
