#pragma once
// `corral-supervisor --check -c FILE` and `corralctl check FILE`: load and validate a
// config without starting anything.
#include <string>

namespace corral::supervisor {

/// Prints every diagnostic on its own line to stderr and returns 1, or prints "FILE: ok"
/// to stdout and returns 0.
int check_config(const std::string& path);

}  // namespace corral::supervisor
