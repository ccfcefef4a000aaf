#include "common/http1/request_checks.h"

#include "common/http1/chars.h"
#include "common/http1/head_scan.h"

namespace corral::http1 {

bool valid_method(std::string_view method) {
  if (method.empty()) return false;
  for (char c : method)
    if (!chars::is_token(c)) return false;
  return true;
}

bool valid_origin_form(std::string_view target) {
  return !target.empty() && target[0] == '/' && detail::valid_path_query(target);
}

bool valid_host(std::string_view host) { return detail::valid_authority(host, false, false); }

}  // namespace corral::http1
