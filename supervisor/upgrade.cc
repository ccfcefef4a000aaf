#include "supervisor/upgrade.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "common/ev/loop.h"
#include "conf/loader.h"
#include "supervisor/arbiter.h"
#include "supervisor/overrides.h"
#include "supervisor/upgrade_state.h"
#include "workers/launcher.h"

namespace corral::supervisor {
namespace {
// The state and the config the new image would run, or a message.
struct Taken {
  UpgradeState state;
  conf::Config config;
};

tl::expected<Taken, std::string> take(int fd) {
  auto bytes = read_state_fd(fd);
  if (!bytes) return tl::unexpected(bytes.error().message());
  auto st = decode_state(*bytes);
  if (!st) return tl::unexpected(st.error().message());
  // The text that runs, not the file (it may have been edited without a reload). The
  // programs it names run already: the machine is not checked again here.
  auto cfg = conf::load_string(st->config_text, st->config_file);
  if (!cfg) {
    std::string why = "the running config does not load with this binary:";
    for (auto& d : cfg.error().items) why += "\n" + d.to_string();
    return tl::unexpected(why);
  }
  RuntimeOverrides overrides;
  overrides.restore(st->overrides);
  (void)overrides.apply_to(*cfg);
  return Taken{std::move(*st), std::move(*cfg)};
}
}  // namespace

std::string own_binary(const char* argv0) {
  std::string a = argv0 ? argv0 : "";
  if (a.find('/') != std::string::npos) {
    if (a[0] == '/') return a;
    if (char* cwd = ::getcwd(nullptr, 0)) {
      std::string out = std::string(cwd) + "/" + a;
      std::free(cwd);
      return out;
    }
    return "";
  }
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string self(buf, static_cast<size_t>(n));
  static constexpr std::string_view kDeleted = " (deleted)";
  if (self.size() > kDeleted.size() && self.compare(self.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0)
    self.resize(self.size() - kDeleted.size());
  return self;
}

int upgrade_check(int fd) {
  auto taken = take(fd);
  if (!taken) {
    std::fprintf(stderr, "corral-supervisor %s cannot take over: %s\n", CORRAL_VERSION, taken.error().c_str());
    return 1;
  }
  std::printf("corral-supervisor %s takes over from %s (state format %d, %zu apps, config %s)\n", CORRAL_VERSION,
              taken->state.from_version.c_str(), taken->state.version, taken->config.apps.size(),
              taken->state.config_file.c_str());
  return 0;
}

int resume_supervisor(int fd, const std::string& binary) {
  log::set_program("corral-supervisor");
  crash::install();
  auto taken = take(fd);
  ::close(fd);
  if (!taken) {
    // The dry run passed with this very binary and state: only a machine that changed in
    // between gets here. Nothing can run on; the workers follow us down (PDEATHSIG).
    CORRAL_LOG(Error, "supervisor") << "cannot take over after the upgrade: " << taken.error();
    return 1;
  }
  log::set_level(taken->config.supervisor.log_level);
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGXFSZ, SIG_IGN);

  ev::Loop loop;
  workers::SystemLauncher launcher;
  SteadyClock clock;
  Arbiter arbiter(loop, launcher, clock, std::move(taken->config), {{}, taken->state.config_text, binary});
  if (auto r = arbiter.resume(std::move(taken->state)); !r) {
    CORRAL_LOG(Error, "supervisor") << "cannot take over after the upgrade: " << r.error().message();
    return 1;
  }
  return arbiter.run();
}

}  // namespace corral::supervisor
