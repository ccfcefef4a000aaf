#pragma once
// The one error vocabulary of corral. Fallible functions return corral::Result<T>
// (see result.h); an Error carries a code, the errno when a system call failed, and
// a human-readable context ("bind 0.0.0.0:80").
#include <string>

namespace corral {

/// Error codes. Control flow ("done", "again") is never encoded here.
enum class Errc {
  Ok = 0,
  System,        ///< a system call failed; sys_errno says which error
  InvalidInput,  ///< bytes or arguments that do not follow the grammar
  Config,        ///< the configuration is invalid
  Protocol,      ///< a peer broke the protocol (client, worker, control channel)
  TooLarge,      ///< a size limit was exceeded
  Timeout,       ///< a deadline passed
  NotFound,      ///< a named thing does not exist
  Unavailable,   ///< a resource is (temporarily) unusable: no worker, queue full
  Closed,        ///< the peer closed the connection or channel
};

struct Error {
  Errc code = Errc::Ok;
  int sys_errno = 0;
  std::string context;

  /// "context: strerror(errno)" or "context".
  std::string message() const;
};

/// Builds an Error from errno (captured at the call) with a context string.
Error sys_error(std::string context);
Error make_error(Errc code, std::string context);

}  // namespace corral
