#include "supervisor/advise.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace corral::supervisor {
namespace {
using nlohmann::json;

constexpr double kHeadroom = 1.25;       // slots planned per request the clients had in the app
constexpr double kProcessCpu = 0.85;     // CPU per Python process planned for (the GIL caps it at 1)
constexpr double kCpuBound = 0.5;        // s at and above which processes, not threads, are the answer
constexpr double kVeryIoBound = 0.1;     // s below which greenlets may be worth their constraints
constexpr double kBusyShare = 0.7;       // of the slots used on average: above it, not "adequate"
constexpr double kQueueShare = 0.1;      // queue time per request, relative to its worker time
constexpr int kMaxProcessesPerCore = 16;  // http/fastcgi/cgi: processes per core at most

std::string format(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string ms(double seconds) {
  if (seconds >= 10) return format("%.0f s", seconds);
  if (seconds >= 1) return format("%.2f s", seconds);
  if (seconds >= 0.01) return format("%.0f ms", seconds * 1e3);
  return format("%.1f ms", seconds * 1e3);
}

std::string bytes(uint64_t b) {
  const double x = static_cast<double>(b);
  if (b >= (1ull << 30)) return format("%.1f GiB", x / (1ull << 30));
  return format("%.0f MiB", x / (1ull << 20));
}

std::string pct(double x) { return format("%.0f%%", x * 100); }
std::string num(double x) { return x >= 10 ? format("%.0f", x) : format("%.1f", x); }
std::string plural(long long n, const char* one, const char* many) { return std::to_string(n) + " " + (n == 1 ? one : many); }

int ceil_int(double x) { return static_cast<int>(std::ceil(x - 1e-9)); }

std::string capacity_text(const Capacity& c) {
  std::string out = plural(c.workers, "worker", "workers") + " x " + std::to_string(c.concurrency);
  if (!c.worker_class.empty()) out += " (" + c.worker_class + ")";
  return out;
}

double number(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}
uint64_t count(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  const double v = it->get<double>();
  return v > 0 ? static_cast<uint64_t>(v) : 0;
}
std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// What recommend() decided and why.
struct Plan {
  Capacity capacity;
  std::vector<std::string> reasons;
  bool limited = false;  // requests would still queue: the cores or the memory allow no more
  int concurrency_cap = 1;  // per process: beyond it more requests only wait for the GIL
};

bool is_wsgi(const std::string& kind) { return kind == "wsgi"; }

// Changing concurrency or worker_class starts a new generation of corral-worker processes
// (cgi, wsgi); a count changes by adding or draining workers.
bool needs_new_generation(const std::string& kind, const Capacity& a, const Capacity& b) {
  return (kind == "wsgi" || kind == "cgi") && (a.concurrency != b.concurrency || a.worker_class != b.worker_class);
}

// The slots (requests served at once) the demand wants: the average number of requests the
// clients had in the app with headroom, never less than what was seen at once, nor than
// what was in use on average.
int slots_wanted(const Measured& m) {
  return std::max({1, ceil_int(m.demand * kHeadroom), static_cast<int>(m.peak_in_flight), ceil_int(m.concurrency_used)});
}

Plan recommend_wsgi(const Measured& m, const Capacity& now, int cores, const AdviseOptions& o) {
  Plan p;
  const double s = m.cpu_share;
  const int want = slots_wanted(m);
  std::string wait_part;
  if (m.cpu_wait_per_request >= 0.0005)
    wait_part = " and " + ms(m.cpu_wait_per_request) + " waiting for a free core";
  if (s >= kCpuBound) {
    // One process keeps about s of a core busy; C/s of them keep every core busy.
    const int cap = static_cast<int>(std::floor(cores / std::max(s, 1e-3) + 1e-9)) + 1;
    p.capacity = {std::clamp(want, 1, cap), 1, "sync"};
    p.concurrency_cap = 1;
    p.reasons.push_back("Requests spend " + pct(s) + " of their worker time on the CPU (" + ms(m.cpu_per_request) +
                        " of CPU" + wait_part + " in " + ms(m.wall_per_request) +
                        "). A Python process runs one thread at a time (the GIL), so it uses at most one core: this "
                        "app scales with processes, not threads.");
    if (want > cap) {
      p.limited = true;
      p.reasons.push_back("Serving the " + num(m.demand) + " requests the clients kept in the app would take about " +
                          num(m.cpu_demand_cores) + " cores; the machine has " + plural(cores, "usable core", "usable cores") +
                          ": " + plural(cap, "process", "processes") +
                          " with one thread each keep every core busy (about cores / " + pct(s) +
                          ", plus one for the moments a process waits). Beyond that requests queue whatever the "
                          "setting; only more cores raise the throughput.");
    } else {
      p.reasons.push_back("The clients kept " + num(m.demand) + " requests in the app on average (peak " +
                          std::to_string(m.peak_in_flight) + " in flight): " + plural(p.capacity.workers, "process", "processes") +
                          " with one thread each serve them with room to spare.");
    }
    return p;
  }
  // Mostly waiting: threads share a process's one core while the others wait.
  const int per_core = std::max(1, ceil_int(1.0 / std::max(s, 1e-3)));
  const int thread_cap = std::min(o.max_threads, per_core);
  const int process_cap = cores + 1;
  const int for_cpu = std::max(1, ceil_int(m.cpu_demand_cores / kProcessCpu));
  int workers = std::clamp(std::max(for_cpu, ceil_int(static_cast<double>(want) / thread_cap)), 1, process_cap);
  int per_process = ceil_int(static_cast<double>(want) / workers);
  std::string cls;
  int concurrency;
  const bool greenlets = s < kVeryIoBound && per_process > o.max_threads && per_core > o.max_threads;
  if (greenlets && o.gevent_available) {
    // Greenlets cost far less than threads: fewer processes (memory), as many as the CPU needs.
    workers = std::clamp(for_cpu, 1, process_cap);
    concurrency = std::min({ceil_int(static_cast<double>(want) / workers), o.max_greenlets, per_core});
    cls = "gevent";
  } else {
    concurrency = std::clamp(per_process, 1, thread_cap);
    cls = concurrency == 1 ? "sync" : "gthread";
  }
  p.capacity = {workers, concurrency, cls};
  p.concurrency_cap = cls == "gevent" ? std::min(o.max_greenlets, per_core) : thread_cap;
  p.reasons.push_back("Requests spend " + pct(s) + " of their worker time on the CPU (" + ms(m.cpu_per_request) +
                      " of CPU" + wait_part + " in " + ms(m.wall_per_request) +
                      "); the rest is waiting (database, network, sleep), which a Python thread does without "
                      "holding the GIL. Threads overlap those waits: about " + std::to_string(per_core) +
                      " requests at a time fill one core (1 / " + pct(s) + ")" +
                      (per_core > o.max_threads ? ", at most " + std::to_string(o.max_threads) + " threads per process" : "") +
                      ".");
  p.reasons.push_back("The clients kept " + num(m.demand) + " requests in the app on average (" +
                      num(m.concurrency_used) + " being served, " + num(m.waiting) + " waiting; peak " +
                      std::to_string(m.peak_in_flight) + " in flight), which takes about " + num(m.cpu_demand_cores) +
                      " cores of CPU: " + plural(workers, "process", "processes") + " x " +
                      plural(concurrency, cls == "gevent" ? "greenlet" : "thread", cls == "gevent" ? "greenlets" : "threads") +
                      " = " + plural(workers * concurrency, "request", "requests") + " at once.");
  if (cls == "gevent") {
    p.reasons.push_back("That is more waiting requests per process than " + std::to_string(o.max_threads) +
                        " threads carry well, so worker_class \"gevent\" (greenlets: one thread, the waits overlap "
                        "in an event loop). Everything the app imports must cooperate with gevent; a C library that "
                        "blocks (some database drivers) blocks every greenlet of its process. If it does not, use "
                        "\"gthread\" with " + std::to_string(thread_cap) + " threads.");
  } else if (greenlets) {
    p.reasons.push_back("gevent would carry more waiting requests per process, but it cannot be imported here "
                        "(install python3-gevent to consider it).");
  }
  if (cls == "gthread" && now.worker_class == "sync")
    p.reasons.push_back("Threads need a thread-safe app; if it is not, use worker_class \"sync\" with " +
                        std::to_string(std::min(process_cap * thread_cap, want)) + " workers instead (more memory).");
  if (workers * concurrency < want) {
    p.limited = true;
    p.reasons.push_back("That is fewer than the " + std::to_string(want) + " requests at once the demand wants: the " +
                        plural(cores, "usable core", "usable cores") +
                        " allow no more (more threads would only wait for the GIL, more processes for a core).");
  }
  return p;
}

// http, fastcgi, cgi: no GIL. A worker of kind cgi runs one CGI process per request, up to
// concurrency at a time; http and fastcgi workers are the app's own processes, and corral
// cannot see whether one serves several requests at once, so their concurrency stays.
Plan recommend_other(const std::string& kind, const Measured& m, const Capacity& now, int cores) {
  Plan p;
  const double s = std::max(m.cpu_share, 1e-3);
  const int want = slots_wanted(m);
  // Slots that keep every core busy: each request uses s of a core while it is served.
  const int slot_cap = std::min(static_cast<int>(std::floor(cores / s + 1e-9)) + 1, kMaxProcessesPerCore * cores);
  const std::string profile = "Requests spend " + pct(m.cpu_share) + " of their worker time on the CPU (" +
                              ms(m.cpu_per_request) + " of CPU in " + ms(m.wall_per_request) + ").";
  p.reasons.push_back(profile);
  const int slots = std::clamp(want, 1, slot_cap);
  if (kind == "cgi") {
    // One corral-worker starts a process per request; its concurrency is the lever.
    const int workers = std::max(1, now.workers);
    p.capacity = {workers, std::max(1, ceil_int(static_cast<double>(slots) / workers)), ""};
    p.reasons.push_back("A cgi worker runs one CGI process per request, up to its concurrency at a time, each on its "
                        "own core: " + plural(workers, "worker", "workers") + " x " +
                        std::to_string(p.capacity.concurrency) + " = " +
                        std::to_string(workers * p.capacity.concurrency) + " requests at once for the " + num(m.demand) +
                        " the clients kept in the app (peak " + std::to_string(m.peak_in_flight) + " in flight).");
  } else {
    const int concurrency = std::max(1, now.concurrency);
    p.capacity = {std::max(1, ceil_int(static_cast<double>(slots) / concurrency)), concurrency, ""};
    std::string why = kind == "fastcgi"
                          ? "A FastCGI responder such as php-cgi serves one request at a time per process, so the "
                            "number of processes is the lever"
                          : "corral cannot see whether this program serves several requests at once, so its "
                            "concurrency stays and the number of processes is the lever (if it does, raising "
                            "concurrency is the cheaper change)";
    p.reasons.push_back(why + ": " + plural(p.capacity.workers, "worker", "workers") + " x " +
                        std::to_string(concurrency) + " for the " + num(m.demand) +
                        " requests the clients kept in the app (peak " + std::to_string(m.peak_in_flight) +
                        " in flight).");
  }
  if (want > slot_cap) {
    p.limited = true;
    p.reasons.push_back("Serving all " + std::to_string(want) + " at once would take about " + num(m.cpu_demand_cores) +
                        " cores; the machine has " + plural(cores, "usable core", "usable cores") +
                        ": more would only queue for the CPU.");
  }
  return p;
}

// Caps the plan's workers to what memory allows. Returns false when nothing changed.
bool fit_memory(Plan& p, AppAdvice& a, const Measured& m, const AdviseOptions& o, bool new_generation) {
  if (m.pss_per_worker == 0) return false;
  const double available = static_cast<double>(a.mem_available_bytes);
  // A new generation starts next to the old one; a count change only adds or removes workers.
  const double budget = o.memory_share * available + (new_generation ? 0.0 : static_cast<double>(a.memory_now_bytes));
  a.memory_budget_bytes = static_cast<uint64_t>(budget);
  const int fits = std::max(1, static_cast<int>(budget / static_cast<double>(m.pss_per_worker)));
  if (p.capacity.workers <= fits) return false;
  const int wanted = p.capacity.workers;
  const int slots = wanted * p.capacity.concurrency;
  p.capacity.workers = fits;
  p.limited = true;
  std::string more;
  if (p.capacity.worker_class == "gthread" || p.capacity.worker_class == "gevent") {
    // Fewer processes: carry the same requests with more threads each, where the CPU allows.
    const int before = p.capacity.concurrency;
    p.capacity.concurrency = std::max(before, std::min(p.concurrency_cap, ceil_int(static_cast<double>(slots) / fits)));
    if (p.capacity.concurrency != before)
      more = ", with " + std::to_string(p.capacity.concurrency) + " per process to carry the same requests";
  }
  p.reasons.push_back(plural(wanted, "worker", "workers") + " x " + bytes(m.pss_per_worker) + " = " +
                      bytes(static_cast<uint64_t>(wanted) * m.pss_per_worker) + " would not fit in " + pct(o.memory_share) +
                      " of the " + bytes(a.mem_available_bytes) + " available" +
                      (new_generation ? " (the new workers start next to the old ones)" : " plus what the app uses now") +
                      ": " + plural(fits, "worker", "workers") + more + ".");
  return true;
}

}  // namespace

const AppSnapshot* StatusSnapshot::app(const std::string& name) const {
  for (auto& a : apps)
    if (a.name == name) return &a;
  return nullptr;
}

StatusSnapshot parse_status(const json& status) {
  StatusSnapshot out;
  if (!status.is_object()) return out;
  if (auto h = status.find("host"); h != status.end() && h->is_object()) {
    out.usable_cores = std::max(1, static_cast<int>(number(*h, "usable_cores")));
    out.mem_available_bytes = count(*h, "mem_available_bytes");
    out.mem_total_bytes = count(*h, "mem_total_bytes");
  }
  auto apps = status.find("apps");
  if (apps == status.end() || !apps->is_array()) return out;
  for (auto& j : *apps) {
    if (!j.is_object()) continue;
    AppSnapshot a;
    a.name = text(j, "name");
    a.kind = text(j, "kind");
    a.worker_class = text(j, "worker_class");
    a.workers = std::max(1, static_cast<int>(number(j, "desired")));
    a.concurrency = std::max(1, static_cast<int>(number(j, "concurrency")));
    a.removed = j.value("removed", false);
    if (auto w = j.find("workers"); w != j.end() && w->is_array()) {
      for (auto& x : *w) {
        if (!x.is_object() || number(x, "pid") <= 0) continue;
        ++a.running;
        a.pss_bytes += count(x, "rss");
        a.in_flight += count(x, "in_flight");
        if (text(x, "state") == "ready") {
          ++a.ready;
          a.ready_pss_bytes += count(x, "rss");
        }
      }
    }
    if (auto t = j.find("totals"); t != j.end() && t->is_object()) {
      a.requests = count(*t, "requests");
      a.busy_seconds = number(*t, "busy_seconds");
      a.queue_seconds = number(*t, "queue_seconds");
      a.queued = count(*t, "queued");
      a.rejected = count(*t, "rejected");
      a.cpu_seconds = number(*t, "cpu_seconds");
      a.cpu_wait_seconds = number(*t, "cpu_wait_seconds");
      a.peak_in_flight = count(*t, "peak_in_flight");
    }
    out.apps.push_back(std::move(a));
  }
  return out;
}

const char* verdict_name(AppAdvice::Verdict v) {
  switch (v) {
    case AppAdvice::Verdict::NoData: return "no_data";
    case AppAdvice::Verdict::Adequate: return "adequate";
    case AppAdvice::Verdict::Change: return "change";
    case AppAdvice::Verdict::AtLimit: return "at_limit";
  }
  return "?";
}

std::vector<AppAdvice> advise(const StatusSnapshot& start, const StatusSnapshot& end, double window_seconds,
                              const std::vector<InFlightSample>& samples, const AdviseOptions& options,
                              const std::string& only_app) {
  std::vector<AppAdvice> out;
  const double W = std::max(window_seconds, 1e-3);
  for (const AppSnapshot& e : end.apps) {
    if (e.removed || (!only_app.empty() && e.name != only_app)) continue;
    AppAdvice a;
    a.app = e.name;
    a.kind = e.kind;
    a.current = {e.workers, e.concurrency, e.worker_class};
    a.recommended = a.current;
    a.usable_cores = end.usable_cores;
    a.mem_available_bytes = end.mem_available_bytes;
    Measured& m = a.measured;
    m.window_seconds = W;
    if (e.ready > 0) m.pss_per_worker = e.ready_pss_bytes / static_cast<uint64_t>(e.ready);
    else if (e.running > 0) m.pss_per_worker = e.pss_bytes / static_cast<uint64_t>(e.running);
    a.memory_now_bytes = m.pss_per_worker * static_cast<uint64_t>(e.workers);
    const AppSnapshot* s = start.app(e.name);
    if (!s) {
      a.reasons.push_back("The app appeared during the window: nothing to compare with. Run advise again.");
      out.push_back(std::move(a));
      continue;
    }
    if (e.requests < s->requests || e.busy_seconds + 1e-9 < s->busy_seconds) {
      a.reasons.push_back("The app's counters started again during the window (corral restarted): run advise again.");
      out.push_back(std::move(a));
      continue;
    }
    m.requests = e.requests - s->requests;
    m.rejected = e.rejected >= s->rejected ? e.rejected - s->rejected : 0;
    for (auto& sample : samples)
      if (auto it = sample.find(e.name); it != sample.end()) m.peak_in_flight = std::max(m.peak_in_flight, it->second);
    // The cumulative peak moved during the window: it was reached in it.
    if (e.peak_in_flight > s->peak_in_flight) m.peak_in_flight = std::max(m.peak_in_flight, e.peak_in_flight);
    if (m.requests == 0) {
      std::string why = "No request to this app finished in the " + ms(W) + " window: nothing to measure, no "
                        "recommendation. Run advise while the app serves its usual traffic.";
      if (m.rejected > 0) why += " (" + std::to_string(m.rejected) + " requests were turned away with 503: are its workers up?)";
      a.reasons.push_back(why);
      out.push_back(std::move(a));
      continue;
    }
    const double n = static_cast<double>(m.requests);
    const double cpu = std::max(0.0, e.cpu_seconds - s->cpu_seconds);
    const double cpu_wait = std::max(0.0, e.cpu_wait_seconds - s->cpu_wait_seconds);
    const double busy = std::max(0.0, e.busy_seconds - s->busy_seconds);
    const double queue = std::max(0.0, e.queue_seconds - s->queue_seconds);
    m.queued = e.queued >= s->queued ? e.queued - s->queued : 0;
    m.requests_per_second = n / W;
    m.cpu_per_request = cpu / n;
    m.cpu_wait_per_request = cpu_wait / n;
    m.wall_per_request = busy / n;
    m.cpu_share = busy > 0 ? std::clamp((cpu + cpu_wait) / busy, 0.0, 1.0) : 0.0;
    m.concurrency_used = busy / W;
    m.waiting = queue / W;
    m.demand = m.concurrency_used + m.waiting;
    m.cpu_demand_cores = m.demand * m.cpu_share;
    m.cores_used = cpu / W;
    m.queue_wait_mean = m.queued ? queue / static_cast<double>(m.queued) : 0.0;
    const int cores = std::max(1, end.usable_cores);

    Plan p = is_wsgi(e.kind) ? recommend_wsgi(m, a.current, cores, options)
                             : recommend_other(e.kind, m, a.current, cores);
    const bool new_generation = needs_new_generation(e.kind, a.current, p.capacity);
    fit_memory(p, a, m, options, new_generation);
    if (a.memory_budget_bytes == 0 && m.pss_per_worker > 0)
      a.memory_budget_bytes = static_cast<uint64_t>(options.memory_share * static_cast<double>(a.mem_available_bytes)) +
                              (new_generation ? 0 : a.memory_now_bytes);

    // Is there pressure at all? Requests that queued for a noticeable share of their time,
    // requests turned away, or most slots busy on average.
    const int slots_now = a.current.workers * a.current.concurrency;
    const double used = m.concurrency_used / std::max(1, slots_now);
    const bool queueing = queue / n > kQueueShare * m.wall_per_request && m.queued > 0;
    const bool pressure = queueing || m.rejected > 0 || used >= kBusyShare;
    std::vector<std::string> findings;
    if (m.rejected > 0)
      findings.push_back(plural(static_cast<long long>(m.rejected), "request was", "requests were") +
                         " turned away with 503 (queue full, no worker, or queue_timeout).");
    if (m.queued > 0)
      findings.push_back(plural(static_cast<long long>(m.queued), "request", "requests") + " (" +
                         pct(static_cast<double>(m.queued) / n) + ") waited in the queue, " + ms(m.queue_wait_mean) +
                         " each on average.");
    findings.push_back("The current " + capacity_text(a.current) + " serves " +
                       plural(slots_now, "request", "requests") + " at once; " + pct(used) +
                       " of that was in use on average (" + num(m.concurrency_used) + ", peak " +
                       std::to_string(m.peak_in_flight) + ").");
    if (!pressure) {
      a.verdict = AppAdvice::Verdict::Adequate;
      a.reasons = findings;
      a.reasons.push_back("No request waited noticeably and none was turned away: the current setting carries this "
                          "load.");
      // Fewer workers would do: the peak still fits, and the CPU the app needs.
      const int keep = std::max({1, ceil_int(static_cast<double>(std::max<uint64_t>(m.peak_in_flight, 1)) /
                                             a.current.concurrency),
                                 ceil_int(m.concurrency_used * kHeadroom / a.current.concurrency),
                                 is_wsgi(e.kind) ? ceil_int(m.cpu_demand_cores / kProcessCpu) : 1});
      if (keep < a.current.workers && m.pss_per_worker > 0) {
        a.fewer_workers = keep;
        a.reasons.push_back(plural(keep, "worker", "workers") + " would still cover the peak of " +
                            std::to_string(m.peak_in_flight) + " in flight and save about " +
                            bytes(static_cast<uint64_t>(a.current.workers - keep) * m.pss_per_worker) +
                            " (if this window's traffic is typical).");
      }
      a.memory_recommended_bytes = a.memory_now_bytes;
      out.push_back(std::move(a));
      continue;
    }
    a.recommended = p.capacity;
    a.memory_recommended_bytes = m.pss_per_worker * static_cast<uint64_t>(p.capacity.workers);
    a.reasons = findings;
    for (auto& r : p.reasons) a.reasons.push_back(std::move(r));
    if (a.recommended == a.current) {
      a.verdict = p.limited ? AppAdvice::Verdict::AtLimit : AppAdvice::Verdict::Adequate;
      a.reasons.push_back(p.limited ? "The current setting is already the most this machine supports for this load."
                                    : "The current setting already matches this load.");
    } else {
      a.verdict = AppAdvice::Verdict::Change;
      if (m.pss_per_worker > 0)
        a.reasons.push_back("Memory: " + plural(p.capacity.workers, "worker", "workers") + " x " +
                            bytes(m.pss_per_worker) + " = " + bytes(a.memory_recommended_bytes) + " (now " +
                            bytes(a.memory_now_bytes) + "; " + bytes(a.mem_available_bytes) + " available" +
                            (new_generation ? "; the new workers start next to the old ones for a moment" : "") + ").");
    }
    out.push_back(std::move(a));
  }
  return out;
}

json to_json(const AppAdvice& a) {
  const Measured& m = a.measured;
  auto cap = [](const Capacity& c) {
    json j{{"workers", c.workers}, {"concurrency", c.concurrency}};
    if (!c.worker_class.empty()) j["worker_class"] = c.worker_class;
    return j;
  };
  json out{{"app", a.app},
           {"kind", a.kind},
           {"verdict", verdict_name(a.verdict)},
           {"measured",
            {{"window_seconds", m.window_seconds},
             {"requests", m.requests},
             {"requests_per_second", m.requests_per_second},
             {"cpu_seconds_per_request", m.cpu_per_request},
             {"cpu_wait_seconds_per_request", m.cpu_wait_per_request},
             {"wall_seconds_per_request", m.wall_per_request},
             {"cpu_bound_share", m.cpu_share},
             {"concurrency_used", m.concurrency_used},
             {"waiting", m.waiting},
             {"demand", m.demand},
             {"cpu_demand_cores", m.cpu_demand_cores},
             {"cores_used", m.cores_used},
             {"queued", m.queued},
             {"queue_wait_seconds_mean", m.queue_wait_mean},
             {"rejected", m.rejected},
             {"peak_in_flight", m.peak_in_flight},
             {"pss_per_worker_bytes", m.pss_per_worker}}},
           {"current", cap(a.current)},
           {"recommended", cap(a.recommended)},
           {"memory",
            {{"now_bytes", a.memory_now_bytes},
             {"recommended_bytes", a.memory_recommended_bytes},
             {"budget_bytes", a.memory_budget_bytes}}},
           {"host", {{"usable_cores", a.usable_cores}, {"mem_available_bytes", a.mem_available_bytes}}},
           {"reasons", a.reasons}};
  if (a.fewer_workers) out["fewer_workers"] = *a.fewer_workers;
  return out;
}

std::string to_text(const AppAdvice& a) {
  const Measured& m = a.measured;
  std::string out = "app " + a.app + " (" + a.kind + ", " + capacity_text(a.current) + ")\n";
  if (a.verdict == AppAdvice::Verdict::NoData) {
    for (auto& r : a.reasons) out += "  " + r + "\n";
    return out;
  }
  out += "  measured over " + ms(m.window_seconds) + ": " + std::to_string(m.requests) + " requests (" +
         num(m.requests_per_second) + "/s); per request " + ms(m.cpu_per_request) + " CPU";
  if (m.cpu_wait_per_request >= 0.0005) out += " + " + ms(m.cpu_wait_per_request) + " waiting for a core";
  out += " in " + ms(m.wall_per_request) + " of worker time (" + pct(m.cpu_share) + " CPU-bound)\n";
  out += "  in the app: " + num(m.concurrency_used) + " served + " + num(m.waiting) + " queued on average, peak " +
         std::to_string(m.peak_in_flight) + " in flight; queue wait " + ms(m.queue_wait_mean) + " (" +
         std::to_string(m.queued) + " queued, " + std::to_string(m.rejected) + " turned away)\n";
  out += "  CPU " + (m.cores_used < 0.1 ? format("%.2f", m.cores_used) : num(m.cores_used)) + " of " + plural(a.usable_cores, "usable core", "usable cores");
  if (m.pss_per_worker) out += "; " + bytes(m.pss_per_worker) + " per worker (PSS)";
  out += "; " + bytes(a.mem_available_bytes) + " available\n";
  switch (a.verdict) {
    case AppAdvice::Verdict::Change:
      out += "  recommendation: " + capacity_text(a.current) + " -> " + capacity_text(a.recommended) + "\n";
      break;
    case AppAdvice::Verdict::Adequate:
      out += "  recommendation: keep " + capacity_text(a.current) + " (adequate)\n";
      break;
    case AppAdvice::Verdict::AtLimit:
      out += "  recommendation: keep " + capacity_text(a.current) + " (at the machine's limit)\n";
      break;
    case AppAdvice::Verdict::NoData:
      break;
  }
  for (auto& r : a.reasons) out += "  - " + r + "\n";
  return out;
}

std::string toml_lines(const AppAdvice& a) {
  std::string out = "[app." + a.app + "]\n";
  out += "workers = " + std::to_string(a.recommended.workers) + "\n";
  out += "concurrency = " + std::to_string(a.recommended.concurrency) + "\n";
  if (!a.recommended.worker_class.empty()) out += "worker_class = \"" + a.recommended.worker_class + "\"\n";
  return out;
}

}  // namespace corral::supervisor
