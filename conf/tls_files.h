#pragma once
// Certificate and key files of TLS listeners, read and checked when the config is loaded
// (by the supervisor, before privileges drop; again on every reload, which is how renewed
// certificates are picked up). The proxy receives the PEM bytes in the config snapshot and
// never opens key files. Thread-safe (no shared state).
#include <optional>
#include <string>

#include "conf/config.h"

namespace corral::conf {

/// Reads c.cert and c.key (absolute paths) into c.cert_pem / c.key_pem and checks that the
/// first is a PEM certificate (chain), the second a PEM private key, and that they match.
/// Returns the problem, naming the file, or nullopt.
std::optional<std::string> load_tls_cert(TlsCert& c);

}  // namespace corral::conf
