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
  if (target.empty() || target[0] != '/') return false;
  for (char c : target)
    if (!chars::is(c, chars::kTarget) || c == '[' || c == ']') return false;
  return detail::valid_pct_run(target);
}

bool valid_host(std::string_view host) { return detail::valid_authority(host, false, false); }

bool valid_field_name(std::string_view name) { return valid_method(name); }

bool valid_field_value(std::string_view value) {
  if (value.empty()) return true;
  if (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' || value.back() == '\t') return false;
  for (char c : value)
    if (!chars::is_field_value(c)) return false;
  return true;
}

}  // namespace corral::http1
