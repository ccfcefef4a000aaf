#include "supervisor/check.h"

#include <cstdio>

#include "conf/loader.h"

namespace corral::supervisor {

int check_config(const std::string& path) {
  auto cfg = conf::load_file(path);
  if (!cfg) {
    for (auto& d : cfg.error().items) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    if (cfg.error().items.empty()) std::fprintf(stderr, "%s: invalid configuration\n", path.c_str());
    return 1;
  }
  std::printf("%s: ok\n", path.c_str());
  return 0;
}

}  // namespace corral::supervisor
