#pragma once
// `corralctl [-c FILE] plan [--json]`: asks the supervisor (POST /plan) what a reload to FILE
// (default: the running config's own file) would do, prints it one change a line, and exits
// with a code a script can branch on. The supervisor loads and validates the candidate
// exactly as a reload would, so the plan is the reload's; `corralctl reload --plan-id ID`
// then applies that plan or nothing. Blocking; corralctl only.
#include <string>

#include "supervisor/ctl/advise_command.h"

namespace corral::supervisor::ctl {

/// Exit codes of `corralctl plan` (like `terraform plan -detailed-exitcode`, with 2 kept
/// for usage errors as in every corralctl command).
enum PlanExit : int {
  kPlanNothing = 0,  ///< a reload would change nothing
  kPlanError = 1,    ///< the candidate is invalid (its errors on stderr), or no plan could be made
  kPlanUsage = 2,    ///< bad arguments
  kPlanReload = 3,   ///< a reload applies every change
  kPlanRestart = 4,  ///< some changes need a restart, or a reload to it would be refused
};

/// Exit code of `corralctl reload --plan-id ID` when the id no longer matches (the config
/// or the running state changed since the plan; nothing changed).
inline constexpr int kReloadPlanStale = 4;

/// `config`: the candidate as given (made absolute here; empty = the running config's file).
int run_plan(const std::string& config, bool json, const ControlCall& call);

/// The exit code for an outcome name of the plan ("nothing", "reload", "restart",
/// "refused"); kPlanError for anything else. Pure.
int plan_exit_code(const std::string& outcome);

}  // namespace corral::supervisor::ctl
