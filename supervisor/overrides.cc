#include "supervisor/overrides.h"

namespace corral::supervisor {
namespace {
constexpr int kMaxWorkers = 4096;         // conf/schema.cc: workers
constexpr int kMaxConcurrency = 100'000;  // conf/schema.cc: concurrency

conf::App* find(conf::Config& c, const std::string& name) {
  for (auto& a : c.apps)
    if (a.name == name) return &a;
  return nullptr;
}

std::string toml_string(const std::string& s) { return "\"" + s + "\""; }
}  // namespace

Result<AppTuning> parse_tuning(const nlohmann::json& body) {
  const char* shape = R"(send {"workers": N, "concurrency": N, "worker_class": "sync"|"gthread"|"gevent"} (any of them))";
  if (!body.is_object()) return fail(Errc::InvalidInput, shape);
  AppTuning t;
  for (auto& [key, v] : body.items()) {
    if (key == "workers" || key == "concurrency") {
      if (!v.is_number_integer()) return fail(Errc::InvalidInput, key + " must be an integer");
      const long long n = v.get<long long>();
      const long long max = key == "workers" ? kMaxWorkers : kMaxConcurrency;
      if (n < 1 || n > max) return fail(Errc::InvalidInput, key + " must be from 1 to " + std::to_string(max));
      (key == "workers" ? t.workers : t.concurrency) = static_cast<int>(n);
    } else if (key == "worker_class") {
      if (!v.is_string()) return fail(Errc::InvalidInput, "worker_class must be a string");
      std::string c = v.get<std::string>();
      if (c != "sync" && c != "gthread" && c != "gevent")
        return fail(Errc::InvalidInput, "worker_class must be \"sync\", \"gthread\" or \"gevent\"");
      t.worker_class = std::move(c);
    } else {
      return fail(Errc::InvalidInput, "unknown key '" + key + "': " + shape);
    }
  }
  if (!t.workers && !t.concurrency && !t.worker_class) return fail(Errc::InvalidInput, shape);
  return t;
}

Result<conf::App> tuned_app(const conf::App& running, const AppTuning& t) {
  conf::App a = running;
  if (t.workers) a.workers = *t.workers;
  if (t.concurrency) a.concurrency = *t.concurrency;
  if (t.worker_class) {
    if (a.kind != conf::AppKind::Wsgi)
      return fail(Errc::InvalidInput, "worker_class applies only to kind \"wsgi\" (app " + a.name + ")");
    a.worker_class = *t.worker_class;
  }
  if (a.kind == conf::AppKind::Wsgi && a.worker_class == "sync" && a.concurrency != 1)
    return fail(Errc::InvalidInput, "worker_class \"sync\" serves one request at a time, but concurrency would be " +
                                        std::to_string(a.concurrency) +
                                        "; send worker_class \"gthread\" or \"gevent\" with it, or concurrency 1");
  return a;
}

void RuntimeOverrides::record(const conf::App& running, const conf::App& changed) {
  Kept& k = apps_[running.name];
  // The file's value is the one a key had before its first runtime change.
  if (changed.workers != running.workers) {
    if (!k.workers) k.file_workers = running.workers;
    k.workers = changed.workers;
  }
  if (changed.concurrency != running.concurrency) {
    if (!k.concurrency) k.file_concurrency = running.concurrency;
    k.concurrency = changed.concurrency;
  }
  if (changed.worker_class != running.worker_class) {
    if (!k.worker_class) k.file_worker_class = running.worker_class;
    k.worker_class = changed.worker_class;
  }
  // Back to the file's value: nothing to keep.
  if (k.workers && *k.workers == k.file_workers) k.workers.reset();
  if (k.concurrency && *k.concurrency == k.file_concurrency) k.concurrency.reset();
  if (k.worker_class && *k.worker_class == k.file_worker_class) k.worker_class.reset();
  if (!k.workers && !k.concurrency && !k.worker_class) apps_.erase(running.name);
}

std::vector<std::string> RuntimeOverrides::apply_to(conf::Config& from_file) {
  std::vector<std::string> notes;
  for (auto it = apps_.begin(); it != apps_.end();) {
    const std::string& name = it->first;
    Kept& k = it->second;
    conf::App* a = find(from_file, name);
    if (!a) {
      notes.push_back("app " + name + " is no longer in the file: its runtime settings are dropped");
      it = apps_.erase(it);
      continue;
    }
    const conf::App file = *a;
    auto file_wins = [&](const char* key, const std::string& was, const std::string& now, const std::string& runtime) {
      if (now == runtime) {
        notes.push_back("app " + name + ": " + key + " " + now + " set at run time is now in the file");
        return;
      }
      notes.push_back("app " + name + ": the file changes " + key + " (" + was + " -> " + now +
                      "): it replaces the value set at run time (" + runtime + ")");
    };
    if (k.workers) {
      if (file.workers == k.file_workers) {
        a->workers = *k.workers;
      } else {
        file_wins("workers", std::to_string(k.file_workers), std::to_string(file.workers), std::to_string(*k.workers));
        k.workers.reset();
      }
    }
    if (k.concurrency) {
      if (file.concurrency == k.file_concurrency) {
        a->concurrency = *k.concurrency;
      } else {
        file_wins("concurrency", std::to_string(k.file_concurrency), std::to_string(file.concurrency),
                  std::to_string(*k.concurrency));
        k.concurrency.reset();
      }
    }
    if (k.worker_class) {
      if (file.kind != conf::AppKind::Wsgi) {
        notes.push_back("app " + name + " is no longer a wsgi app: worker_class " + toml_string(*k.worker_class) +
                        " set at run time is dropped");
        k.worker_class.reset();
      } else if (file.worker_class == k.file_worker_class) {
        a->worker_class = *k.worker_class;
      } else {
        file_wins("worker_class", toml_string(k.file_worker_class), toml_string(file.worker_class), toml_string(*k.worker_class));
        k.worker_class.reset();
      }
    }
    // The file's half of a concurrency/worker_class pair with the runtime's other half may
    // not fit ("sync" with 8 threads): then the file's pair is kept whole.
    if (a->kind == conf::AppKind::Wsgi && a->worker_class == "sync" && a->concurrency != 1) {
      notes.push_back("app " + name + ": concurrency " + std::to_string(a->concurrency) + " and worker_class " +
                      toml_string(a->worker_class) + " do not fit together: the file's concurrency and worker_class apply");
      a->concurrency = file.concurrency;
      a->worker_class = file.worker_class;
      k.concurrency.reset();
      k.worker_class.reset();
    }
    if (!k.workers && !k.concurrency && !k.worker_class) {
      it = apps_.erase(it);
    } else {
      ++it;
    }
  }
  return notes;
}

nlohmann::json RuntimeOverrides::describe(const std::string& app) const {
  nlohmann::json out = nlohmann::json::object();
  auto it = apps_.find(app);
  if (it == apps_.end()) return out;
  const Kept& k = it->second;
  if (k.workers) out["workers"] = *k.workers;
  if (k.concurrency) out["concurrency"] = *k.concurrency;
  if (k.worker_class) out["worker_class"] = *k.worker_class;
  return out;
}

nlohmann::json RuntimeOverrides::state() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [app, k] : apps_) {
    nlohmann::json e{{"file_workers", k.file_workers}, {"file_concurrency", k.file_concurrency},
                     {"file_worker_class", k.file_worker_class}};
    if (k.workers) e["workers"] = *k.workers;
    if (k.concurrency) e["concurrency"] = *k.concurrency;
    if (k.worker_class) e["worker_class"] = *k.worker_class;
    out[app] = std::move(e);
  }
  return out;
}

void RuntimeOverrides::restore(const nlohmann::json& j) {
  apps_.clear();
  if (!j.is_object()) return;
  for (const auto& [app, e] : j.items()) {
    if (!e.is_object()) continue;
    Kept k;
    if (e.contains("workers") && e["workers"].is_number_integer()) k.workers = e["workers"].get<int>();
    if (e.contains("concurrency") && e["concurrency"].is_number_integer()) k.concurrency = e["concurrency"].get<int>();
    if (e.contains("worker_class") && e["worker_class"].is_string()) k.worker_class = e["worker_class"].get<std::string>();
    k.file_workers = e.value("file_workers", 0);
    k.file_concurrency = e.value("file_concurrency", 0);
    k.file_worker_class = e.value("file_worker_class", "");
    if (k.workers || k.concurrency || k.worker_class) apps_[app] = std::move(k);
  }
}

}  // namespace corral::supervisor
