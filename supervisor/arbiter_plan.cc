// The Arbiter's plans: POST /plan (what a reload to a candidate would do, changing nothing)
// and POST /reload {"plan_id"} (apply exactly a plan, or nothing). Both compute the plan
// with plan_candidate(), the function the plain reload uses, so a plan and the reload that
// follows it cannot disagree.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "supervisor/arbiter.h"
#include "supervisor/check.h"
#include "supervisor/plan_id.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
constexpr size_t kRecentPlans = 16;

std::string json_error(const std::string& message) { return nlohmann::json{{"error", message}}.dump(); }

nlohmann::json diagnostics_json(const conf::Diagnostics& d) {
  nlohmann::json out = nlohmann::json::array();
  for (auto& item : d.items) out.push_back(item.to_string());
  return out;
}
}  // namespace

tl::expected<Arbiter::PlannedReload, conf::Diagnostics> Arbiter::plan_candidate(const std::string& path) const {
  std::string text;
  auto cfg = load_config(path, &text);  // the file (read once), plus the programs, folders and users it names
  if (!cfg) return tl::unexpected(std::move(cfg.error()));
  PlannedReload p;
  // Values set at run time (scale, tune) stay unless the file changed that same key (kept
  // aside until the reload is applied: a rejected one changes nothing).
  p.overrides = overrides_;
  p.notes = p.overrides.apply_to(*cfg);
  p.plan = plan_reload(config_, *cfg);
  p.id = make_plan_id({config_generation_, &config_, text, &*cfg, &p.plan});
  // The workers that go, named for the operator in the plan and in the reload's answer
  // (after the id: their pids are not what the plan means; a worker restarted since keeps
  // the plan valid).
  for (auto& d : p.plan.apps) {
    if (d.action != AppDiff::Action::Replace && d.action != AppDiff::Action::Remove) continue;
    for (auto& pool : pools_) {
      if (pool->app().name != d.name) continue;
      for (auto& w : pool->slots())
        if (!w->retiring()) d.running.push_back({w->index(), static_cast<int>(w->pid)});
    }
  }
  p.next = std::move(*cfg);
  p.text = std::move(text);
  return p;
}

ControlApi::Response Arbiter::on_plan_request(const ControlApi::Request& r) {
  crash::Operation op("plan");
  if (phase_ != Phase::Running) return {503, json_error("stopping")};
  std::string path = config_.file;
  if (!r.body.empty()) {
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return {400, json_error("send {\"config\": PATH} or nothing")};
    if (body.contains("config")) {
      if (!body["config"].is_string()) return {400, json_error("config must be a path")};
      path = body["config"].get<std::string>();
    }
  }
  if (path.empty()) path = config_.file;
  if (!std::filesystem::path(path).is_absolute())
    return {400, json_error("config must be an absolute path (the supervisor's working folder is not yours)")};
  auto planned = plan_candidate(path);
  if (!planned) {
    return {400, nlohmann::json{{"error", "invalid config, a reload to it would be rejected"},
                                {"config", path},
                                {"diagnostics", diagnostics_json(planned.error())}}
                     .dump()};
  }
  ReloadPlan& plan = planned->plan;
  recent_plans_.emplace_back(planned->id, path);
  while (recent_plans_.size() > kRecentPlans) recent_plans_.pop_front();
  CORRAL_LOG(Info, kTag) << "plan " << planned->id << " for " << path << ": " << outcome_name(plan.outcome());
  nlohmann::json out{{"plan_id", planned->id},
                     {"generation", config_generation_},
                     {"config", path},
                     {"running_config", config_.file},
                     {"outcome", outcome_name(plan.outcome())},
                     {"changes", plan.describe()},
                     {"notes", planned->notes},
                     {"plan", plan.to_json()}};
  return {200, out.dump()};
}

std::optional<ControlApi::Response> Arbiter::on_reload_with_plan(const ControlApi::Request& r) {
  if (r.body.empty()) return std::nullopt;
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return ControlApi::Response{400, json_error("send {\"plan_id\": ID} or nothing")};
  if (!body.contains("plan_id")) return std::nullopt;
  if (!body["plan_id"].is_string() || !plan_id_generation(body["plan_id"].get<std::string>()))
    return ControlApi::Response{400, json_error("plan_id must be an id printed by corralctl plan")};
  const std::string wanted = body["plan_id"].get<std::string>();
  crash::Operation op("reload: plan " + wanted);
  CORRAL_LOG(Info, kTag) << "reload of plan " << wanted << " requested over the control API";
  check_runtime_dir();  // new workers' sockets go there
  auto planned = plan_candidate(config_.file);
  if (!planned) {
    std::string why = planned.error().to_string();
    if (!why.empty() && why.back() == '\n') why.pop_back();
    CORRAL_LOG(Error, kTag) << "reload of plan " << wanted << " rejected, the running config keeps serving: " << why;
    return ControlApi::Response{400, nlohmann::json{{"error", "invalid config, nothing changed: " + why},
                                                    {"diagnostics", diagnostics_json(planned.error())}}
                                         .dump()};
  }
  if (planned->id != wanted) {
    std::string why = "the config or the running state changed since plan " + wanted + "; plan again";
    const uint64_t made_at = *plan_id_generation(wanted);
    if (made_at != config_generation_) {
      why += " (the running config is generation " + std::to_string(config_generation_) + " now, the plan was made at " +
             std::to_string(made_at) + ")";
    } else {
      for (auto& [id, path] : recent_plans_)
        if (id == wanted && path != config_.file)
          why += " (it was made for " + path + "; a reload reads " + config_.file + ": put the candidate there first)";
    }
    CORRAL_LOG(Warn, kTag) << "reload refused, nothing changed: " << why;
    return ControlApi::Response{409, nlohmann::json{{"error", why}, {"plan_id", planned->id}}.dump()};
  }
  notify_reloading();
  auto changes = apply_planned(std::move(*planned));
  if (!changes) return ControlApi::Response{400, json_error("nothing changed: " + changes.error().context)};
  if (!reload_) reload_.emplace();
  reload_->changes = *changes;
  reload_->waiters.push_back(r.id);
  loop_.post([this] { check_reload_settled(); });
  return ControlApi::Response{0, {}};  // answered by finish_reload()
}

}  // namespace corral::supervisor
