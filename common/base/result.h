#pragma once
// corral::Result<T> = tl::expected<T, Error>. Only the alias is spelled in code, so a
// move to std::expected is one line here.
#include <tl/expected.hpp>

#include "common/base/error.h"

namespace corral {

template <typename T>
using Result = tl::expected<T, Error>;

using Unexpected = tl::unexpected<Error>;

inline Unexpected fail(Error e) { return Unexpected(std::move(e)); }
inline Unexpected fail(Errc code, std::string context) {
  return Unexpected(make_error(code, std::move(context)));
}
inline Unexpected fail_sys(std::string context) { return Unexpected(sys_error(std::move(context))); }

}  // namespace corral
