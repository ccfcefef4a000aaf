#pragma once
// The seam between the protocol-neutral Exchange and the protocol spoken to workers. An
// UpstreamClient sends one buffered request to a worker socket and streams the response
// back to an UpstreamHandler. Http1Client (kind = "http", "cgi", "wsgi") is one
// implementation; a FastCGI client is another. make_upstream_client() picks by app kind.
// Loop-affine: every call and callback runs on the owning loop thread.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/http1/parser.h"
#include "conf/config.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {

class RequestBody;

/// What the upstream client reports, in order: either connect_failed (the request was never
/// sent), or head → body* → (complete | error), or error alone. read_done may follow any
/// batch of head/body events.
class UpstreamHandler {
 public:
  virtual ~UpstreamHandler() = default;
  /// Could not connect (errno): the request was never sent, safe to try another worker.
  virtual void on_upstream_connect_failed(int err) noexcept = 0;
  /// The final (non-1xx) response head. Views are valid during the call only. Clients that
  /// do not speak HTTP/1.1 (FastCGI) translate into this form.
  virtual void on_upstream_head(const http1::ResponseHead& head) noexcept = 0;
  /// An interim (1xx) response head other than 101, before the final one (103 Early Hints,
  /// say). Views are valid during the call only. The handler may abort the request.
  virtual void on_upstream_interim(const http1::ResponseHead& head) noexcept { (void)head; }
  /// Decoded body bytes (valid during the call only).
  virtual void on_upstream_body(std::string_view data) noexcept = 0;
  /// One read's worth of events has been delivered (a good moment to flush to the client).
  virtual void on_upstream_read_done() noexcept = 0;
  /// The response is complete; the connection is already back in the pool (or closed).
  virtual void on_upstream_complete() noexcept = 0;
  /// The worker failed (reset, EOF mid-message, garbage). `why` is a static string.
  virtual void on_upstream_error(const char* why) noexcept = 0;
  /// The worker answered an upgrade request (UpstreamRequest::upgrade) with 101: the
  /// connection is the handler's now (never pooled again), `early` holds the bytes the
  /// worker sent after the head (valid during the call only). The client is idle again.
  virtual void on_upstream_upgrade(const http1::ResponseHead& head, std::unique_ptr<UpstreamConn> conn,
                                   std::string_view early) noexcept {
    (void)head, (void)conn, (void)early;
    on_upstream_error("unexpected 101 Switching Protocols");
  }
};

/// What a client that maps requests onto scripts itself (FastCGI) knows about its app. Built
/// once per config snapshot (proxy/runtime), immutable, shared by every loop.
struct ScriptApp {
  std::string name;             ///< the app's name, for log lines ("app=NAME")
  std::string root;             ///< folder of scripts (absolute, symlinks resolved); "" = one program
  std::string script_filename;  ///< SCRIPT_FILENAME in one-program mode ("" = not sent)
  std::string index;            ///< root mode: the script a folder path runs ("" = none: 404)
  std::string document_root;    ///< DOCUMENT_ROOT and the base of PATH_TRANSLATED: root, else the app's cwd
  std::string server_software;  ///< SERVER_SOFTWARE ("corral/VERSION")
  std::vector<std::pair<std::string, std::string>> env;  ///< the app's env, added to the meta-variables
};

/// One request for a worker. Every view must stay valid until complete/error/abort.
struct UpstreamRequest {
  std::string_view path;    ///< the worker slot's Unix socket
  uint64_t generation = 0;  ///< the slot generation (pooled connections are keyed by it)
  std::string_view method;
  bool idempotent = false;  ///< a keep-alive race before any response byte may be retried
  /// The request head as the proxy re-framed it, in HTTP/1.1 syntax ("GET / HTTP/1.1\r\n",
  /// end-to-end headers, Host, X-Forwarded-*, X-Request-Id, Content-Length, CRLF). This is
  /// the canonical protocol-neutral form whatever the frontend spoke (HTTP/2 requests are
  /// translated into it); a non-HTTP client parses it back with common/http1 (it is the
  /// proxy's own output, so it always parses).
  std::string_view head;
  /// The body as the frontend keeps it (memory, a temp file, or streaming in); null: no
  /// body. Must outlive the request. A streaming body that fails before its end makes the
  /// client abort the request to the worker (on_upstream_error).
  RequestBody* source = nullptr;
  /// HTTP/1.1 workers: send the body with chunked framing (a streamed body of unknown
  /// length; the head says Transfer-Encoding: chunked).
  bool chunked = false;
  /// The head asks the worker to switch protocols (Upgrade forwarded): a 101 answer hands
  /// the connection over (UpstreamHandler::on_upstream_upgrade). Only Http1Client does.
  bool upgrade = false;
  std::string_view client_ip;
  bool tls = false;         ///< the client connection is TLS (HTTPS=on for FastCGI)
  /// FastCGI only: the app (never null for kind "fastcgi") and the matched route's path
  /// prefix (the SCRIPT_NAME base).
  const ScriptApp* script_app = nullptr;
  std::string_view route_prefix;
};

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  /// Sends the request: a pooled connection when there is one, else a new one. May call
  /// back synchronously (connect_failed, error).
  virtual void start(const UpstreamRequest& req) = 0;
  /// Stops everything and closes the connection (no callbacks). Safe when idle.
  virtual void abort() = 0;
  /// Backpressure: stop / restart reading the response while the client is slow.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  /// Frees read buffers while idle (the frontend's connection waits for its next request);
  /// they are allocated again by the next start(). Idle keep-alive connections then pin no
  /// response-sized memory.
  virtual void release_idle_buffers() {}
};

/// The client for an app kind. Never null.
std::unique_ptr<UpstreamClient> make_upstream_client(conf::AppKind kind, UpstreamPool& pool, UpstreamHandler& handler);

}  // namespace corral::proxy
