#pragma once
// The admin listener's status page: /status.json (built from the proxy's counters, the
// dispatchers and the supervisor's worker figures) and /status (a self-contained HTML page
// that polls it). Thread-safe (reads only thread-safe sources).
#include <string>
#include <string_view>

namespace corral::proxy {

class AdminService;
struct Runtime;

std::string status_json(const AdminService& admin, const Runtime& rt);
/// The page (inline CSS and JS, no external assets).
std::string_view status_page_html();
/// The Content-Security-Policy the page is served with.
std::string_view status_page_csp();

}  // namespace corral::proxy
