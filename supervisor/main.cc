// corral-supervisor: parses the command line, loads the config and runs the Arbiter.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "common/ev/loop.h"
#include "supervisor/arbiter.h"
#include "supervisor/check.h"
#include "supervisor/upgrade.h"
#include "workers/launcher.h"

namespace {
constexpr const char* kUsage =
    "usage: corral-supervisor -c FILE        run in the foreground\n"
    "       corral-supervisor --check -c FILE validate the config and exit\n"
    "       corral-supervisor --version\n";

int usage() {
  std::fputs(kUsage, stderr);
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace corral;
  std::string config_path;
  bool check = false;
  int upgrade_check = -1, upgrade_state = -1;  // fds of a handed state (supervisor/upgrade.h)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) config_path = argv[++i];
    else if (a == "--check") check = true;
    else if (a == "--upgrade-check" && i + 1 < argc) upgrade_check = std::atoi(argv[++i]);
    else if (a == "--upgrade-state" && i + 1 < argc) upgrade_state = std::atoi(argv[++i]);
    else if (a == "--version") return std::printf("corral-supervisor %s\n", CORRAL_VERSION) < 0;
    else if (a == "-h" || a == "--help") return std::fputs(kUsage, stdout) < 0;
    else return usage();
  }
  if (config_path.empty()) return usage();
  if (check) return supervisor::check_config(config_path);
  if (upgrade_check >= 0) return supervisor::upgrade_check(upgrade_check);
  const std::string binary = supervisor::own_binary(argv[0]);  // now, before a package replaces it
  if (upgrade_state >= 0) return supervisor::resume_supervisor(upgrade_state, binary);
  // Absolute, so status and logs name the file unambiguously.
  if (config_path[0] != '/') {
    if (char* cwd = ::getcwd(nullptr, 0)) {
      config_path = std::string(cwd) + "/" + config_path;
      std::free(cwd);
    }
  }

  log::set_program("corral-supervisor");
  crash::install();
  // The file and the machine: nothing starts when a worker's program or folder is missing.
  std::string text;
  auto cfg = supervisor::load_config(config_path, &text);
  if (!cfg) {
    for (auto& d : cfg.error().items) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return 1;
  }
  log::set_level(cfg->supervisor.log_level);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);  // a log file over RLIMIT_FSIZE: EFBIG, not death

  ev::Loop loop;
  workers::SystemLauncher launcher;
  supervisor::SteadyClock clock;
  supervisor::Arbiter arbiter(loop, launcher, clock, std::move(*cfg), {{}, std::move(text), binary});
  if (auto r = arbiter.start(); !r) {
    CORRAL_LOG(Error, "supervisor") << "cannot start: " << r.error().message();
    return 1;
  }
  return arbiter.run();
}
