#pragma once
// Which Python runs a kind = "wsgi" worker. Debian's libpython3.11.so, which corral-worker
// embeds, is built without the profile-guided and link-time optimisation /usr/bin/python3
// gets, so app code runs slower in it (about 30 % more CPU for the CPU-bound Flask route of
// tests/bench/wsgi.sh). corral-worker therefore execs the interpreter binary
// (<virtualenv>/bin/python3, else /usr/bin/python3) with the same arguments and fds, and the
// WSGI host, built a second time as the extension module _corral_wsgi, serves the app
// from inside it (workers/wsgi/module.cc): the same C++ server, parser and WSGI calling code,
// on the interpreter Gunicorn would run on.
//
// It falls back to the embedded interpreter (the same host, linked into corral-worker) when
// the binary is missing or not the Python the module was built for (a virtualenv made with
// another Python), when the module is not installed or cannot be imported, or when the app's
// environment sets CORRAL_WSGI_EMBEDDED=1. The reason is logged once per app (by slot 0).
// No Python here: this runs before any interpreter exists.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "workers/options.h"

namespace corral::worker::wsgi {

/// <virtualenv>/bin/python3, else /usr/bin/python3: sys.executable of the worker either way.
std::string interpreter_path(const Options& opts);

/// "MAJOR.MINOR" of the Python `interpreter` is, from the name its symlinks resolve to
/// ("python3.11"), else from `virtualenv`'s pyvenv.cfg ("version = 3.11.2", or virtualenv's
/// "version_info"). nullopt when neither tells.
std::optional<std::string> interpreter_version(const std::string& interpreter, const std::string& virtualenv);

/// The _corral_wsgi extension module: next to corral-worker (the build tree; the packages
/// install both into /usr/lib/corral), else in the configured install folder. "" when this
/// build has none (sanitizer builds) or it is not there.
std::string find_host_module();

/// Replaces this process by the interpreter running the host module, or returns why not (the
/// caller then embeds). `args` is corral-worker's argv. The listening socket (fd 3) must not be
/// close-on-exec yet. Logs the reason once per app when it returns.
void exec_interpreter(const Options& opts, const std::string& tag, const std::vector<std::string>& args);

/// The bootstrap given to `python3 -c`: puts the module's folder first on sys.path for the
/// import only, then calls _corral_wsgi.main(args); if the import fails, execs corral-worker
/// back with CORRAL_WSGI_FALLBACK set to the reason. argv: [-c, module_dir, worker, args...].
extern const char* const kBootstrap;

}  // namespace corral::worker::wsgi
