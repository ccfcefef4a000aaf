#pragma once
// Config ⇄ canonical bytes (JSON) for the control channel: the proxy never reads the file.
// Pure functions; any thread.
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "conf/config.h"

namespace corral::conf {

/// Encodes every field of `c` as canonical JSON (sorted keys, durations in ms, a "version"
/// field). Equal configs give equal bytes.
std::string to_snapshot(const Config& c);

/// Decodes bytes made by to_snapshot. Never throws: malformed JSON, a missing or mistyped
/// field or an unknown version → Errc::Protocol naming the field. The result equals the
/// encoded Config (operator==).
[[nodiscard]] Result<Config> from_snapshot(std::string_view bytes);

}  // namespace corral::conf
