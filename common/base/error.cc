#include "common/base/error.h"

#include <cerrno>
#include <cstring>

namespace corral {

std::string Error::message() const {
  if (sys_errno != 0) return context + ": " + std::strerror(sys_errno);
  return context;
}

Error sys_error(std::string context) {
  int e = errno;
  return Error{Errc::System, e, std::move(context)};
}

Error make_error(Errc code, std::string context) { return Error{code, 0, std::move(context)}; }

}  // namespace corral
