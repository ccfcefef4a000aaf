// corral-proxy: all network I/O. Spawned by corral-supervisor with --control-fd N.
#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/ev/loop.h"
#include "proxy/server.h"

int main(int argc, char** argv) {
  using namespace corral;
  log::set_program("corral-proxy");
  int control_fd = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--control-fd" && i + 1 < argc) {
      auto v = parse_decimal(argv[++i]);
      if (v && *v < 65536) control_fd = static_cast<int>(*v);
    } else if (a == "--version") {
      std::printf("corral-proxy %s\n", CORRAL_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "usage: corral-proxy --control-fd N\n");
      return 2;
    }
  }
  if (control_fd < 0) {
    std::fprintf(stderr, "corral-proxy: --control-fd N is required (the supervisor starts the proxy)\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // A file over RLIMIT_FSIZE (access log, body temp file) fails the write with EFBIG, which
  // is handled like a full disk, instead of killing the proxy.
  std::signal(SIGXFSZ, SIG_IGN);
  // Every client and upstream connection is an fd: use all the fds we are allowed (the soft
  // limit is often 1024 while the hard one is far higher), as HAProxy does by itself.
  if (rlimit rl{}; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ev::Loop loop;
  proxy::Server server(loop);
  server.attach_control(UniqueFd(control_fd));
  return server.run();
}
