#pragma once
// Config ⇄ canonical bytes (JSON) for the control channel: the proxy never reads the file.
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "conf/config.h"

namespace corral::conf {

std::string to_snapshot(const Config& c);
[[nodiscard]] Result<Config> from_snapshot(std::string_view bytes);

}  // namespace corral::conf
