#pragma once
// The in-memory ends of an HTTP/2 session for fuzz_h2: h2_memory.cc replaces
// ClientConnection (proxy/client_connection.cc is not linked into fuzz_h2) with one that
// reads the client's bytes from `MemoryWire::in` and appends what the session writes to
// `out`, and replaces make_upstream_client (proxy/upstream/upstream_client.cc) with an
// in-memory worker that parses every request head it is given with common/http1, checks the
// body against the head's framing, and answers. One connection at a time (fuzz_h2 is
// single-threaded). Any broken rule aborts, which libFuzzer reports as a crash.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace corral::proxy::fuzz {

struct MemoryWire {
  std::string_view in;  ///< client bytes not read yet
  bool eof = false;     ///< once `in` is empty: end of stream (else reads say EAGAIN)
  std::string out;      ///< everything the session wrote
  bool want_read = false, want_write = false;
  bool closed = false;
  bool write_shut = false;
  /// Calls the session's on_io (set by the connection while it lives).
  std::function<void(bool readable, bool writable)> pump;
  uint64_t forwarded = 0;  ///< request heads the in-memory worker was given
  uint64_t answered = 0;   ///< responses it completed
};

/// The wire of the connection being fuzzed.
MemoryWire& wire();

[[noreturn]] void fail(const char* what, std::string_view detail = {});

}  // namespace corral::proxy::fuzz
