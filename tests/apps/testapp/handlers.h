#pragma once
// The test app's endpoints. Each handler turns one Request into one Response; the
// connection loop (main.cc) serializes it with a single writev.
//
// Thread-safe: called concurrently from every connection thread.
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "request_reader.h"

namespace testapp {

/// Process-wide counters shared by all connection threads.
struct Counters {
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;          ///< already chunk-encoded when `chunked`
  bool chunked = false;
  bool exit_now = false;     ///< /exit: terminate without answering
  std::string interim;       ///< raw interim responses (1xx) written before the head
  std::string raw;           ///< /bad-response: these bytes instead of a response, then close
  bool close_listener = false;  ///< /close-listener: stop accepting (after answering), stay alive
};

/// Dispatches on the request path:
///   /             hello text          /pid            the process id
///   /echo         JSON: method, target, version, headers (as received, in order), body
///   /sha256       "HEX BYTES": SHA-256 and length of the body, hashed as it arrives
///   /sleep?ms=N   sleeps, then answers /cpu?ms=N      burns CPU for N ms
///   /big?bytes=N[&chunked=1]          N bytes ('a'..'z' repeating), optionally chunked
///   /json?bytes=N  N bytes of application/json (order records; compresses about 5:1)
///   /early?bytes=N[&code=C]  status C (200) with N bytes ('a'..'z'), written before the
///                 request body is read; the body is then read and dropped, and the
///                 connection closed (main.cc)
///   /maxinflight  most requests ever in flight at once: counted from the complete head
///                 until just before the response is written (itself not counted)
///   /status?code=N  that status       /env?name=V     the value of env var V (404 if unset)
///   /conn         "pid:connection-serial" (tells whether a connection was reused)
///   /exit         _exit(3) without answering
///   /early-hints  a 103 Early Hints (Link: </hint.css>; rel=preload) before a 200
///   /bad-response?kind=K  a canned, mostly malformed response (handlers.cc lists K), then close
///   /fork-away[?serve=1]  double-forks a daemon (setsid) and answers its pid; serve=1: it
///                 holds the listening socket and answers "stray" once this worker is gone
///   /close-listener  answers its pid, then closes the listening socket; keeps serving the open
///                 connections and stays alive (a worker that stopped listening)
///   .../whoami    $WHOAMI, under any prefix (which app and generation answered)
///   ...?body_delay_ms=N  any path: waits N ms before reading the body (a slow app; main.cc)
///   .../soak?ms=N&pad=P  sleeps N ms, then "$WHOAMI HEX BYTES\n" (the body's SHA-256 and
///                 length) and P bytes of padding: the soak driver's endpoint (tests/soak)
Response handle(const Request& req, const Counters& counters, uint64_t connection_serial);

/// Serializes the status line and headers (Content-Length or Transfer-Encoding added here).
std::string serialize_head(const Response& resp, bool keep_alive);

/// True for the paths that are not counted in the in-flight statistics.
bool is_introspection(const Request& req);

/// True for .../soak (its body is hashed as it is read, like /sha256).
bool is_soak(const Request& req);

}  // namespace testapp
