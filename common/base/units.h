#pragma once
// Durations ("30s", "250ms", "2m", "1h", "1.5s") and sizes ("512MiB", "16k", "1GB", 4096).
// Pure functions; thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace corral {

using Millis = std::chrono::milliseconds;

/// Parses a duration. Units: ms, s, m, h (a bare number is seconds). Returns nullopt on
/// malformed input, negative values or overflow.
std::optional<Millis> parse_duration(std::string_view s);

/// Parses a size. Units: B, K/KB/KiB, M/MB/MiB, G/GB/GiB (case-insensitive; powers of 1024,
/// as nginx does), a bare number is bytes. Returns nullopt on malformed input or overflow.
std::optional<uint64_t> parse_size(std::string_view s);

/// "30s", "250ms" — the shortest exact spelling.
std::string format_duration(Millis d);

}  // namespace corral
