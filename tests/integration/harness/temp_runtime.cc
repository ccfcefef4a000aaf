#include "tests/integration/harness/temp_runtime.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace corral::itest {

TempRuntime::TempRuntime() {
  char tmpl[] = "/tmp/crl-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = tmpl;
  ::mkdir(runtime_dir().c_str(), 0700);
}

TempRuntime::~TempRuntime() {
  if (keep_) {
    std::fprintf(stderr, "[itest] kept temp dir: %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempRuntime::write_file(const std::string& name, const std::string& content) const {
  std::string p = file(name);
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  if (!f) return "";
  f << content;
  return f ? p : "";
}

void TempRuntime::keep() { keep_ = true; }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace corral::itest
