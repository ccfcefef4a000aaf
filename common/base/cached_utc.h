#pragma once
// A UTC time formatted with strftime, cached per thread and per second: log lines and Date
// fields format the same second many times. Each format (the template parameter, a
// constexpr char array) gets its own thread_local cache.
#include <ctime>
#include <string_view>

namespace corral {

template <const char* Fmt>
std::string_view cached_utc(time_t t) {
  thread_local time_t cached = -1;
  thread_local char buf[64];
  thread_local size_t len = 0;
  if (t != cached) {
    struct tm tm;
    gmtime_r(&t, &tm);
    len = std::strftime(buf, sizeof buf, Fmt, &tm);
    cached = t;
  }
  return std::string_view(buf, len);
}

/// RFC 9110 §5.6.7 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
inline constexpr char kHttpDateFormat[] = "%a, %d %b %Y %H:%M:%S GMT";

/// The Date field's value for now.
inline std::string_view http_date_now() { return cached_utc<kHttpDateFormat>(::time(nullptr)); }

}  // namespace corral
