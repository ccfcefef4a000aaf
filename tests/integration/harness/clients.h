#pragma once
// Clients for integration tests: curl (the reference HTTP client) via posix_spawn, and a
// raw socket client for malformed input, pipelining and slowloris, plus a small response
// parser for raw bytes.
//
// Thread-safe: free functions may be called from many threads; a RawClient belongs to one.
#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace corral::itest {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// The first value of header `name` (case-insensitive) in `h`, or "" when absent.
std::string header_value(const Headers& h, std::string_view name);
bool has_header(const Headers& h, std::string_view name);
/// How many fields named `name` (case-insensitive) `h` has.
int header_count(const Headers& h, std::string_view name);

struct HttpResponse {
  int status = 0;       ///< 0 when no response was received
  Headers headers;
  std::string body;
  std::string error;    ///< curl's exit code and stderr when it failed
  std::string header(std::string_view name) const { return header_value(headers, name); }
};

/// Runs `curl -sS -D - -o - -w ... ARGS` (ARGS must include the URL) and parses the final
/// response. Interim 1xx responses are skipped.
HttpResponse curl(const std::vector<std::string>& args, std::chrono::milliseconds timeout = std::chrono::seconds(15));
/// GET http://127.0.0.1:PORT + path with optional extra curl args.
HttpResponse http_get(int port, const std::string& path, const std::vector<std::string>& extra = {});
/// GET http://localhost + path over a Unix socket (straight to a worker).
HttpResponse unix_get(const std::string& socket_path, const std::string& path);

/// Runs `fn(i)` for i in [0, n) on n threads at once; results in index order.
std::vector<HttpResponse> parallel(int n, const std::function<HttpResponse(int)>& fn);

/// A response parsed from raw bytes.
struct RawResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::string header(std::string_view name) const { return header_value(headers, name); }
};

/// Parses consecutive complete responses (Content-Length, chunked, or bodyless by status;
/// without either, the body runs to the end of `bytes`). Stops at the first incomplete one.
std::vector<RawResponse> parse_responses(std::string_view bytes);

/// The sum of every sample in a Prometheus text `metrics` whose line starts with `prefix` (a
/// metric name and the first of its labels, e.g. `corral_connections{listener="a"`).
double metric_sum(const std::string& metrics, std::string_view prefix);

/// The parsed body of a testapp /echo response; null json when it is not JSON.
nlohmann::json parse_echo(const std::string& body);
/// The header values named `name` (case-insensitive) in an /echo document, in order.
std::vector<std::string> echo_headers(const nlohmann::json& echo, std::string_view name);

/// A blocking-with-timeouts socket client. Not thread-safe.
class RawClient {
 public:
  RawClient() = default;
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  /// Connects to 127.0.0.1:port. False on failure. rcvbuf > 0 sets SO_RCVBUF first (a
  /// small one makes a slow reader whose kernel buffers cannot absorb a response).
  bool connect_tcp(int port, int rcvbuf = 0);
  /// Connects to dst:port from the source address `src` (IPv6 when `dst` has a colon), as a
  /// client with its own address would: connection limits per client, PROXY protocol peers.
  bool connect_from(int port, const std::string& src, const std::string& dst = "127.0.0.1");
  /// Sends all of `bytes` (MSG_NOSIGNAL). False when the peer is gone.
  bool send(std::string_view bytes);
  /// Half-closes: the peer reads EOF, this side can still read.
  void shutdown_write();
  /// Reads until the peer closes or `timeout` passes. closed() tells which happened.
  std::string read_until_close(std::chrono::milliseconds timeout);
  /// Reads until `n` complete responses are in the buffer, the peer closes, or timeout.
  std::vector<RawResponse> read_responses(size_t n, std::chrono::milliseconds timeout);
  /// Waits up to `timeout` for data; returns what arrived (possibly nothing).
  std::string read_some(std::chrono::milliseconds timeout);
  /// True once a read saw EOF or a reset.
  bool closed() const { return closed_; }
  /// Everything received so far.
  const std::string& received() const { return received_; }
  void close();

 private:
  // One poll+read; appends to received_. Returns bytes read (0 on timeout or close).
  size_t read_once(std::chrono::milliseconds timeout);

  int fd_ = -1;
  bool closed_ = false;
  std::string received_;
};

}  // namespace corral::itest
