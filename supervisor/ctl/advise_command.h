#pragma once
// `corralctl advise [APP] [--window 60s] [--json] [--apply [--yes]]`: measures the apps over
// a window through GET /status (a snapshot at each end, in-flight samples every second in
// between), prints the figures and supervisor/advise.h's recommendation, and with --apply
// sends it to POST /apps/NAME/tune (a make-before-break replacement of that app's
// workers). --apply asks before changing anything when stdin and stdout are a terminal;
// --yes, or no terminal (scripts, tests), applies at once. Blocking; corralctl only.
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace corral::supervisor::ctl {

/// One control API request: fills `body`, returns the HTTP status, or -1 after printing
/// why the supervisor cannot be reached.
using ControlCall = std::function<int(const std::string& method, const std::string& path,
                                      const std::string& request_body, std::string& body)>;

struct AdviseArgs {
  std::string app;              ///< empty = every app
  double window_seconds = 60;
  bool json = false;
  bool apply = false;
  bool yes = false;
};

/// The arguments after "advise" (--json is taken by the caller and passed in `json`).
/// nullopt after printing the problem to stderr.
std::optional<AdviseArgs> parse_advise_args(const std::vector<std::string>& args, bool json);

/// Runs the command. Exit code: 0 done; 1 error (unreachable, refused change); 3 a change
/// was applied but its new workers were not all ready when the supervisor answered.
int run_advise(const AdviseArgs& args, const ControlCall& call);

}  // namespace corral::supervisor::ctl
