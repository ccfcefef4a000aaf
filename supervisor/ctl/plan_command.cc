#include "supervisor/ctl/plan_command.h"

#include <cstdio>
#include <filesystem>
#include <system_error>

#include <nlohmann/json.hpp>

namespace corral::supervisor::ctl {
namespace {
using nlohmann::json;

std::string absolute(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

std::string error_of(const json& j, const std::string& body) {
  if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  return body;
}
}  // namespace

int plan_exit_code(const std::string& outcome) {
  if (outcome == "nothing") return kPlanNothing;
  if (outcome == "reload") return kPlanReload;
  if (outcome == "restart" || outcome == "refused") return kPlanRestart;
  return kPlanError;
}

int run_plan(const std::string& config, bool as_json, const ControlCall& call) {
  json req = json::object();
  if (!config.empty()) req["config"] = absolute(config);
  std::string body;
  const int code = call("POST", "/plan", req.dump(), body);
  if (code < 0) return kPlanError;
  const json j = json::parse(body, nullptr, false);
  if (code != 200) {
    if (as_json && !j.is_discarded()) std::printf("%s\n", body.c_str());
    if (code == 400 && j.is_object() && j.contains("diagnostics") && j["diagnostics"].is_array()) {
      // The same lines as `corralctl check`: file:line:column: key: what is wrong.
      for (auto& d : j["diagnostics"])
        if (d.is_string()) std::fprintf(stderr, "%s\n", d.get<std::string>().c_str());
      std::fprintf(stderr, "corralctl: %s: %s\n", j.value("config", config).c_str(), error_of(j, body).c_str());
      return kPlanError;
    }
    std::string why = j.is_discarded() ? body : error_of(j, body);
    if (code == 404) why += " (is the supervisor older than this corralctl?)";
    std::fprintf(stderr, "corralctl: plan failed (%d): %s\n", code, why.c_str());
    return kPlanError;
  }
  if (j.is_discarded() || !j.is_object() || !j.contains("outcome") || !j["outcome"].is_string())
    return std::fprintf(stderr, "corralctl: the supervisor's answer is not a plan\n"), kPlanError;
  const std::string outcome = j["outcome"].get<std::string>();
  const int exit_code = plan_exit_code(outcome);
  if (as_json) {
    std::printf("%s\n", body.c_str());
    return exit_code;
  }
  const std::string id = j.value("plan_id", ""), candidate = j.value("config", ""), running = j.value("running_config", "");
  std::printf("plan %s: %s against the running config (generation %llu)\n", id.c_str(), candidate.c_str(),
              static_cast<unsigned long long>(j.value("generation", 0ull)));
  if (j.contains("changes") && j["changes"].is_array())
    for (auto& c : j["changes"])
      if (c.is_string()) std::printf("%s\n", c.get<std::string>().c_str());
  if (j.contains("notes") && j["notes"].is_array())
    for (auto& n : j["notes"])
      if (n.is_string()) std::printf("note: %s\n", n.get<std::string>().c_str());
  if (candidate != running && exit_code != kPlanError)
    std::printf("note: a reload reads %s, not %s: put the candidate there before `corralctl reload --plan-id`\n",
                running.c_str(), candidate.c_str());
  switch (exit_code) {
    case kPlanNothing: std::printf("=> a reload changes nothing\n"); break;
    case kPlanReload: std::printf("=> a reload applies all of it: corralctl reload --plan-id %s\n", id.c_str()); break;
    case kPlanRestart:
      if (outcome == "refused")
        std::printf("=> a reload to this config is refused (nothing would change): restart corral to apply it\n");
      else
        std::printf("=> some changes need a restart (the lines that say which); a reload applies the rest: "
                    "corralctl reload --plan-id %s\n", id.c_str());
      break;
    default: break;
  }
  return exit_code;
}

}  // namespace corral::supervisor::ctl
