// libFuzzer target for the config loader: TOML text → validated Config, or diagnostics.
// For each input (the text of /fuzz/corral.toml):
//  1. load_string never crashes, hangs or leaks (ASan/UBSan/LSan, libFuzzer's timeout);
//  2. a rejected config comes with at least one diagnostic, each a clean message: it names
//     the file, has a line within the text (or 0), a message, and prints as one line of
//     printable text (no control character from the input reaches a terminal or log);
//  3. an accepted config survives the proxy's snapshot: from_snapshot(to_snapshot(c)) == c.
// Files the text names are read as they are on this machine (TLS files, programs' paths).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/base/log.h"
#include "conf/loader.h"
#include "conf/snapshot.h"

using namespace corral;

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz_config: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool clean_line(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log::set_level(log::Level::Error);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto loaded = conf::load_string(text, "/fuzz/corral.toml");
  if (!loaded) {
    const conf::Diagnostics& d = loaded.error();
    if (d.empty()) fail("a rejected config without a diagnostic");
    int lines = 1;
    for (char c : text) lines += c == '\n';
    for (const conf::Diagnostic& x : d.items) {
      std::string s = x.to_string();
      if (x.file != "/fuzz/corral.toml") fail("a diagnostic names another file", s);
      if (x.message.empty()) fail("a diagnostic without a message", s);
      if (x.line < 0 || x.line > lines) fail("a diagnostic's line is outside the text", s);
      if (!clean_line(s)) fail("a diagnostic is not one clean line", s);
    }
    return 0;
  }
  std::string snap = conf::to_snapshot(*loaded);
  auto back = conf::from_snapshot(snap);
  if (!back) fail("a valid config's snapshot does not decode", back.error().message());
  if (!(*back == *loaded)) fail("a valid config changes through its snapshot", snap);
  if (conf::to_snapshot(*back) != snap) fail("a snapshot is not canonical", snap);
  return 0;
}
