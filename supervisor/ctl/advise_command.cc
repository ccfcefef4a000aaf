#include "supervisor/ctl/advise_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/base/units.h"
#include "supervisor/advise.h"

extern char** environ;

namespace corral::supervisor::ctl {
namespace {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string error_of(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"];
  return body;
}

// GET /status as JSON; nullopt after printing why.
std::optional<json> get_status(const ControlCall& call) {
  std::string body;
  const int code = call("GET", "/status", "", body);
  if (code < 0) return std::nullopt;
  if (code != 200) {
    std::fprintf(stderr, "corralctl: status failed (%d): %s\n", code, error_of(body).c_str());
    return std::nullopt;
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    std::fprintf(stderr, "corralctl: the supervisor's answer is not JSON\n");
    return std::nullopt;
  }
  return j;
}

// Whether the workers' Python can import gevent, judged by the python3 on PATH (a
// virtualenv of the app may differ: the reasons say what to do then).
bool gevent_importable() {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  char python[] = "python3", flag[] = "-c", code[] = "import gevent, gevent.monkey";
  char* argv[] = {python, flag, code, nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "python3", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return false;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool interactive() { return ::isatty(0) && ::isatty(1); }

std::string capacity_line(const Capacity& c) {
  std::string out = "workers " + std::to_string(c.workers) + ", concurrency " + std::to_string(c.concurrency);
  if (!c.worker_class.empty()) out += ", worker_class " + c.worker_class;
  return out;
}

// POST /apps/NAME/tune. Returns the answer (status "reloaded"/"pending"/"unchanged"), or
// nullopt after printing why it failed.
std::optional<json> tune(const ControlCall& call, const AppAdvice& a) {
  json req{{"workers", a.recommended.workers}, {"concurrency", a.recommended.concurrency}};
  if (!a.recommended.worker_class.empty()) req["worker_class"] = a.recommended.worker_class;
  std::string body;
  const int code = call("POST", "/apps/" + a.app + "/tune", req.dump(), body);
  if (code < 0) return std::nullopt;
  if (code != 200) {
    std::fprintf(stderr, "corralctl: tuning app %s failed (%d): %s\n", a.app.c_str(), code, error_of(body).c_str());
    return std::nullopt;
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return json::object();
  return j;
}
}  // namespace

std::optional<AdviseArgs> parse_advise_args(const std::vector<std::string>& args, bool as_json) {
  AdviseArgs a;
  a.json = as_json;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& x = args[i];
    if (x == "--window" || x.rfind("--window=", 0) == 0) {
      std::string v;
      if (x == "--window") {
        if (i + 1 >= args.size()) {
          std::fprintf(stderr, "corralctl: --window needs a duration (for example 60s)\n");
          return std::nullopt;
        }
        v = args[++i];
      } else {
        v = x.substr(9);
      }
      auto d = parse_duration(v);
      if (!d || d->count() < 1000) {
        std::fprintf(stderr, "corralctl: --window %s: give a duration of at least 1s (for example 60s, 5m)\n", v.c_str());
        return std::nullopt;
      }
      a.window_seconds = static_cast<double>(d->count()) / 1000.0;
    } else if (x == "--apply") {
      a.apply = true;
    } else if (x == "--yes" || x == "-y") {
      a.yes = true;
    } else if (!x.empty() && x[0] != '-' && a.app.empty()) {
      a.app = x;
    } else {
      std::fprintf(stderr, "corralctl: advise: unexpected argument '%s'\n", x.c_str());
      return std::nullopt;
    }
  }
  return a;
}

int run_advise(const AdviseArgs& args, const ControlCall& call) {
  auto first = get_status(call);
  if (!first) return 1;
  const auto t0 = Clock::now();
  const StatusSnapshot start = parse_status(*first);
  if (!args.app.empty() && !start.app(args.app)) {
    std::fprintf(stderr, "corralctl: no app named '%s'\n", args.app.c_str());
    return 1;
  }
  if (::isatty(2))
    std::fprintf(stderr, "corralctl: measuring for %s (in flight sampled every second)...\n",
                 format_duration(Millis(static_cast<long long>(args.window_seconds * 1000))).c_str());
  // In flight every second; the last status is the window's end.
  std::vector<InFlightSample> samples;
  const auto end_at = t0 + std::chrono::milliseconds(static_cast<long long>(args.window_seconds * 1000));
  json last;
  for (int tick = 1;; ++tick) {
    const auto next = std::min(end_at, t0 + std::chrono::seconds(tick));
    std::this_thread::sleep_until(next);
    auto st = get_status(call);
    if (!st) return 1;
    InFlightSample sample;
    for (auto& a : parse_status(*st).apps) sample[a.name] = a.in_flight;
    samples.push_back(std::move(sample));
    if (next >= end_at) {
      last = std::move(*st);
      break;
    }
  }
  const double window = std::chrono::duration<double>(Clock::now() - t0).count();
  const StatusSnapshot end = parse_status(last);
  AdviseOptions options;
  bool any_wsgi = false;
  for (auto& a : end.apps) any_wsgi |= a.kind == "wsgi";
  options.gevent_available = any_wsgi && gevent_importable();
  std::vector<AppAdvice> advice = advise(start, end, window, samples, options, args.app);

  json out{{"window_seconds", window}, {"apps", json::array()}};
  for (auto& a : advice) out["apps"].push_back(to_json(a));
  if (!args.json) {
    for (auto& a : advice) std::printf("%s\n", to_text(a).c_str());
  }
  std::vector<const AppAdvice*> changes;
  for (auto& a : advice)
    if (a.verdict == AppAdvice::Verdict::Change) changes.push_back(&a);
  if (!args.apply) {
    if (!args.json && !changes.empty()) {
      std::printf("To apply: corralctl advise%s --apply (make before break: no request fails).\n",
                  args.app.empty() ? "" : (" " + args.app).c_str());
      std::printf("To keep it after corral restarts, in corral.toml:\n");
      for (auto* a : changes) std::printf("%s", toml_lines(*a).c_str());
    }
    if (args.json) std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }

  // --apply: show the change, ask when someone is there to answer, then tune each app.
  if (changes.empty()) {
    if (args.json) {
      out["applied"] = json::array();
      std::printf("%s\n", out.dump(2).c_str());
    } else {
      std::printf("Nothing to apply.\n");
    }
    return 0;
  }
  FILE* talk = args.json ? stderr : stdout;
  for (auto* a : changes)
    std::fprintf(talk, "app %s: %s -> %s\n", a->app.c_str(), capacity_line(a->current).c_str(),
                 capacity_line(a->recommended).c_str());
  if (!args.yes && interactive()) {
    std::fprintf(talk, "Apply? [y/N] ");
    std::fflush(talk);
    char answer[16] = {0};
    if (!std::fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y')) {
      std::fprintf(talk, "Nothing changed.\n");
      return 0;
    }
  }
  int rc = 0;
  json applied = json::array();
  for (auto* a : changes) {
    auto r = tune(call, *a);
    if (!r) {
      rc = 1;
      continue;
    }
    const bool settled = r->value("settled", false);
    if (!settled) rc = rc == 0 ? 3 : rc;
    applied.push_back({{"app", a->app}, {"result", *r}});
    if (!args.json) {
      std::printf("app %s: %s\n", a->app.c_str(),
                  settled ? "applied (new workers serving)"
                          : "applied; some new workers are not ready yet, the previous ones keep serving");
      if (r->contains("changes") && (*r)["changes"].is_array())
        for (auto& c : (*r)["changes"])
          if (c.is_string()) std::printf("  %s\n", c.get<std::string>().c_str());
    }
  }
  if (args.json) {
    out["applied"] = applied;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("This stays in effect across reloads unless corral.toml changes the same key; to keep it after "
                "corral restarts, put in corral.toml:\n");
    for (auto* a : changes) std::printf("%s", toml_lines(*a).c_str());
  }
  return rc;
}

}  // namespace corral::supervisor::ctl
