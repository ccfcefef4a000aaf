#include "proxy/runtime.h"

#include <limits.h>
#include <stdlib.h>

#include "common/base/log.h"
#include "proxy/compress/filter.h"
#include "proxy/static/static_site.h"
#include "proxy/tls_context.h"

namespace corral::proxy {
namespace {

std::shared_ptr<const ScriptApp> make_script_app(const conf::App& app) {
  auto s = std::make_shared<ScriptApp>();
  s->name = app.name;
  if (!app.root.empty()) {
    // resolve_in_root() compares resolved script paths against a resolved root.
    char buf[PATH_MAX];
    s->root = ::realpath(app.root.c_str(), buf) ? std::string(buf) : app.root;
  }
  s->script_filename = app.script_filename;
  s->index = app.index;
  s->document_root = !s->root.empty() ? s->root : app.cwd;
  s->server_software = std::string("corral/") + CORRAL_VERSION;
  s->env = app.env;
  return s;
}

}  // namespace

std::shared_ptr<const Runtime> make_runtime(const conf::Config& config, uint64_t generation,
                                            std::map<std::string, std::shared_ptr<AppDispatcher>>& dispatchers,
                                            size_t threads) {
  auto rt = std::make_shared<Runtime>();
  rt->generation = generation;
  rt->proxy = config.proxy;
  rt->proxy.temp_dir = config.body_temp_dir();  // the effective folder, never ""
  rt->graceful_timeout = config.supervisor.graceful_timeout;
  rt->limits.max_head_size = config.proxy.max_header_size;
  rt->limits.max_header_count = static_cast<size_t>(config.proxy.max_header_count);
  std::map<std::string, std::shared_ptr<AppDispatcher>> next;
  for (const auto& app : config.apps) {
    AppRuntime a;
    a.name = app.name;
    a.kind = app.kind;
    a.timeout = app.timeout;
    a.queue_timeout = app.queue_timeout;
    a.tunnel_idle_timeout = app.tunnel_idle_timeout;
    a.request_buffering = app.request_buffering;
    if (app.kind == conf::AppKind::Fastcgi) a.script_app = make_script_app(app);
    auto it = dispatchers.find(app.name);
    if (it != dispatchers.end()) {
      a.dispatcher = it->second;
      a.dispatcher->update_settings(app.queue_size);
    } else {
      AppDispatcher::Settings s;
      s.app = app.name;
      s.queue_size = app.queue_size;
      s.threads = threads;
      a.dispatcher = AppDispatcher::create(s);
    }
    a.dispatcher->set_max_tunnels(app.max_tunnels);
    next[app.name] = a.dispatcher;
    rt->apps.push_back(std::move(a));
  }
  dispatchers.swap(next);
  auto app_index = [&](const std::string& name) {
    for (size_t i = 0; i < rt->apps.size(); ++i)
      if (rt->apps[i].name == name) return static_cast<int>(i);
    return -1;
  };
  rt->router = Router(config.routes, app_index);
  rt->trusted_proxies = net::CidrSet(config.proxy.trusted_proxies);
  // One entry per [[route]], in file order. A static route's folder is opened once per
  // snapshot, and /etc/mime.types read once for all of them.
  std::shared_ptr<const statics::MimeTypes> mime;
  auto& entries = rt->router.mutable_entries();
  for (size_t i = 0; i < config.routes.size() && i < entries.size(); ++i) {
    const conf::Route& r = config.routes[i];
    entries[i].compress = compress::make_policy(r);
    if (r.static_root.empty()) continue;
    if (!mime) mime = statics::MimeTypes::load();
    entries[i].static_site = std::make_shared<const statics::StaticSite>(r, mime);
    if (!r.fallback.empty()) entries[i].fallback = app_index(r.fallback);
  }
  for (const auto& l : config.listeners) {
    auto lr = std::make_shared<ListenerRuntime>();
    lr->address = l.address;
    lr->h2 = l.h2;
    lr->h2c = l.h2 && l.tls.empty();
    lr->redirect_https = l.redirect_https;
    lr->hsts = l.hsts;
    lr->max_connections = l.max_connections;
    lr->max_connections_per_client = l.max_connections_per_client;
    lr->proxy_protocol = l.proxy_protocol;
    lr->proxy_protocol_trusted = net::CidrSet(l.proxy_protocol_trusted);
    lr->limiter = std::make_shared<ConnectionLimiter>();  // make_runtime(…, state) keeps the running one
    if (!l.tls.empty()) {
      // Fresh contexts per config: a reload picks up renewed certificates, and connections
      // already open keep the context they started with.
      std::vector<TlsContext::Cert> certs;
      for (const auto& c : l.tls) certs.push_back({c.cert_pem, c.key_pem, c.cert});
      auto ctx = TlsContext::create(certs,
                                    l.tls_profile == conf::TlsProfile::Modern ? TlsContext::Profile::Modern
                                                                               : TlsContext::Profile::Intermediate,
                                    l.h2, process_ticket_keys());
      if (ctx) {
        lr->tls = std::move(*ctx);
      } else {
        // The supervisor checked the files; this is a version skew or an OpenSSL refusal.
        CORRAL_LOG(Error, "tls") << "listener " << l.address << ": " << ctx.error().message();
        lr->tls_failed = true;
      }
    }
    rt->listeners.push_back(std::move(lr));
  }
  return rt;
}

std::shared_ptr<const Runtime> make_runtime(const conf::Config& config, uint64_t generation, RuntimeState& state) {
  auto base = make_runtime(config, generation, state.dispatchers, state.threads);
  auto rt = std::const_pointer_cast<Runtime>(base);  // still private to this function's caller
  std::map<std::string, std::shared_ptr<metrics::RouteMetrics>> routes;
  for (auto& e : rt->router.mutable_entries()) {
    if (e.app < 0 && !e.static_site) continue;
    // A static route counts as app "static" (its fallback's requests included).
    const std::string app = e.static_site ? std::string("static") : rt->apps[static_cast<size_t>(e.app)].name;
    std::string key = app + "\n" + e.label();
    auto it = routes.find(key);
    if (it == routes.end()) {
      auto old = state.routes.find(key);
      auto m = old != state.routes.end() ? old->second
                                         : std::make_shared<metrics::RouteMetrics>(app, e.label(), state.threads);
      it = routes.emplace(key, std::move(m)).first;
    }
    e.metrics = it->second;
  }
  state.routes.swap(routes);
  std::map<std::string, RuntimeState::Listener> listeners;
  auto listener_state = [&](const std::string& address) -> RuntimeState::Listener& {
    auto it = listeners.find(address);
    if (it != listeners.end()) return it->second;
    auto old = state.listeners.find(address);
    RuntimeState::Listener kept = old != state.listeners.end()
                                      ? old->second
                                      : RuntimeState::Listener{std::make_shared<metrics::ListenerMetrics>(address, state.threads), nullptr};
    return listeners.emplace(address, std::move(kept)).first->second;
  };
  // The label is the configured address; two listeners written the same (port 0) get "#index".
  // The connection counts are kept under the same key: connections accepted before a reload
  // still count against the listener's limits, and give their place back to the same counts.
  for (size_t i = 0; i < rt->listeners.size(); ++i) {
    auto l = std::const_pointer_cast<ListenerRuntime>(rt->listeners[i]);
    std::string key = listeners.count(l->address) ? l->address + "#" + std::to_string(i) : l->address;
    RuntimeState::Listener& kept = listener_state(key);
    l->metrics = kept.metrics;
    if (kept.limiter)
      l->limiter = kept.limiter;
    else
      kept.limiter = l->limiter;
  }
  if (!config.proxy.admin.empty() && config.proxy.admin != "off") {
    auto a = std::make_shared<ListenerRuntime>();
    a->address = config.proxy.admin;
    a->admin = true;
    a->h2 = false;
    a->h2c = false;
    a->metrics = listener_state(a->address).metrics;
    rt->admin_listener = std::move(a);
  }
  state.listeners.swap(listeners);
  return rt;
}

std::shared_ptr<const ListenerRuntime> Runtime::listener(size_t index) const {
  if (index == kAdminListener && admin_listener) return admin_listener;
  if (index < listeners.size()) return listeners[index];
  static const auto kDefault = std::make_shared<const ListenerRuntime>();
  return kDefault;
}

}  // namespace corral::proxy
