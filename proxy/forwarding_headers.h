#pragma once
// Request and response heads as the proxy re-frames them: hop-by-hop headers removed
// (RFC 9110 §7.6.1: Connection and the names it lists, Keep-Alive, Proxy-Connection, TE,
// Trailer, Transfer-Encoding, Upgrade), the client's body framing replaced by the proxy's
// own, and the edge proxy's X-Forwarded-For/-Proto/-Host and X-Request-Id set (incoming
// ones are replaced, not trusted, except from a peer in [proxy] trusted_proxies, whose
// X-Forwarded-For is extended and X-Forwarded-Proto kept; X-Real-IP then carries the client
// the chain names, for corral-worker's REMOTE_ADDR). W3C Trace Context: the client's traceparent goes on
// when valid, otherwise a new one replaces it (and its tracestate is dropped). Pure
// functions appending to caller-owned buffers, so the hot path reuses capacity and
// allocates nothing. Thread-safe (no shared state) except RequestIdGenerator, which is
// thread-safe by design, and TraceParentGenerator, one per thread.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/http1/parser.h"
#include "common/net/cidr.h"

namespace corral::proxy {

/// The tokens listed in a message's Connection headers. The first kMax are kept here; when
/// the list is that long, contains() reads the fields themselves, so every listed field is
/// removed (RFC 9110 §7.6.1), however many a client names.
struct ConnectionTokens {
  static constexpr size_t kMax = 16;
  std::array<std::string_view, kMax> names{};
  size_t count = 0;  ///< 0: no Connection option, nothing to look up
  /// True when `name` is listed; `headers` are the ones the tokens were collected from.
  bool contains(std::string_view name, const std::vector<http1::Header>& headers) const;
};

/// Collects the Connection header tokens of a head.
ConnectionTokens connection_tokens(const std::vector<http1::Header>& headers);

/// True for the fixed hop-by-hop names (case-insensitive).
bool is_hop_by_hop(std::string_view name);

/// What the edge proxy adds to every forwarded request.
struct Forwarding {
  std::string_view client_ip;  ///< empty: X-Forwarded-For is dropped, not set
  /// The peer is in trusted_proxies: `forwarded_for` (its X-Forwarded-For values, joined) is
  /// kept with client_ip appended, and a valid X-Forwarded-Proto of its own is kept.
  bool trusted_peer = false;
  std::string_view forwarded_for;
  /// The client the trusted chain names (forwarded_client()); sent as X-Real-IP when it is not
  /// client_ip. Empty = client_ip.
  std::string_view real_ip;
  std::string_view proto = "http";
  std::string_view host;       ///< the request's Host
  std::string_view request_id;
  /// The port the client connected to (X-Forwarded-Port) and its source port
  /// (X-Remote-Port): corral-worker turns them into SERVER_PORT and REMOTE_PORT. 0 = not sent.
  uint16_t server_port = 0;
  uint16_t client_port = 0;
  /// The matched route's path prefix (X-Forwarded-Prefix; corral-worker's SCRIPT_NAME base).
  /// Empty = not sent.
  std::string_view prefix;
  /// The traceparent sent to the worker (the client's, when valid, or a new one). Empty =
  /// none is sent. The client's own traceparent fields are never copied.
  std::string_view traceparent;
  /// The client's tracestate fields go along: only with the client's own traceparent.
  bool keep_tracestate = false;
  /// An upgrade the worker may answer with 101 (proxy/upgrade.h): sent as "Upgrade: <this>"
  /// with "Connection: upgrade". Empty = none (the client's Upgrade is hop-by-hop).
  std::string_view upgrade;
  /// The protocol the request came in on, for Via ("1.0", "1.1", "2"). Empty = from the
  /// request's version ("1.<minor>").
  std::string_view received_protocol;
};

/// The Max-Forwards fields of a request: the first one's value, and how many there were.
struct MaxForwardsFields {
  std::string_view first;
  int count = 0;
};
/// Those of `req` when it is an OPTIONS or TRACE (the only methods they mean anything to);
/// none for others.
MaxForwardsFields max_forwards_fields(const http1::RequestHead& req);

/// What the proxy answers itself instead of forwarding, the same whatever protocol the
/// request came in on:
///   - OPTIONS or TRACE with Max-Forwards 0: the proxy is the final recipient (RFC 9110
///     §7.6.2): 200 for OPTIONS, 501 for TRACE (which corral does not implement itself);
///     with two Max-Forwards fields or one that is not a decimal number: 400;
///   - CONNECT: a tunnel, which corral's apps do not offer (§9.3.6; WebSocket comes as an
///     Upgrade, or over HTTP/2 as an extended CONNECT, which the caller does not pass here): 501;
///   - "OPTIONS *" asks about the server, not a resource of an app (§9.3.7): 200.
struct LocalAnswer {
  int status = 0;           ///< 0: forward the request (a Max-Forwards above 0 is decremented)
  const char* reason = "";  ///< why it is refused, for logs and the rejection counter ("" for a plain answer)
};
/// `target` "*" must come with OPTIONS (both frontends refuse it on other methods first).
/// Pure; thread-safe.
LocalAnswer local_answer(std::string_view method, std::string_view target, MaxForwardsFields max_forwards);

/// Appends "METHOD target HTTP/1.1\r\n" and every end-to-end header of `req`, then Host
/// (kept from the request; for an absolute-form target its authority, and the target sent in
/// origin-form: RFC 9112 §3.2.1, §3.2.2), Via (RFC 9110 §7.6.3: "<protocol> corral", after
/// any the client sent), Max-Forwards decremented on OPTIONS and TRACE (§7.6.2), the
/// forwarding headers, and nothing else: the caller ends the
/// head with finish_request_head() once the body length is known. Drops Content-Length,
/// Transfer-Encoding, Expect (answered by the proxy), the incoming forwarding headers
/// (Forwarded, X-Forwarded-For/-Proto/-Host/-Port/-Prefix, X-Remote-Port, X-Request-Id),
/// traceparent (fwd.traceparent is sent instead) and, unless fwd.keep_tracestate, tracestate.
void append_request_head(const http1::RequestHead& req, const Forwarding& fwd, std::string& out);

/// Appends "Content-Length: N\r\n" (when the request has a body or N > 0) and the final CRLF.
void finish_request_head(std::string& out, uint64_t body_length, bool had_body);
/// Appends "Transfer-Encoding: chunked\r\n" and the final CRLF: a body streamed to the
/// worker whose length is not known yet (request_buffering = false, a chunked client body).
void finish_request_head_chunked(std::string& out);

/// How the proxy frames a response body towards the client.
enum class ClientFraming {
  None,           ///< no body and no framing field (1xx, 204, 304; HEAD when the worker sent no length)
  Empty,          ///< no body, "Content-Length: 0" (so the client does not wait for a close)
  ContentLength,  ///< the worker's Content-Length passed through (for HEAD: with no body)
  Chunked,        ///< re-chunked (HTTP/1.1 client, worker chunked or until-close)
  UntilClose,     ///< HTTP/1.0 client without a length: the connection close ends it
};

/// Picks the framing for a response to a client speaking HTTP/1.`client_minor`. A HEAD
/// response carries the worker's Content-Length unchanged when it sent one, and no framing
/// field otherwise (RFC 9110 §9.3.2: never an invented "Content-Length: 0"); the caller
/// sends no body for it either way.
ClientFraming choose_framing(const http1::ResponseHead& resp, int client_minor, bool head_request);

/// Appends "Name: value\r\n".
void append_header(std::string& out, std::string_view name, std::string_view value);

/// The value of the first field called `name` (any case) in `headers`, or empty.
std::string_view header_value(const std::vector<http1::Header>& headers, std::string_view name);

/// Appends the status line ("HTTP/1.1 <status> <reason>"), every end-to-end header of
/// `resp` (hop-by-hop and framing headers removed), Date when the worker sent none (RFC 9110
/// §6.6.1), the framing header and a Connection header when needed (close; or keep-alive for
/// an HTTP/1.0 client kept open), and CRLF.
void append_response_head(const http1::ResponseHead& resp, ClientFraming framing, int client_minor, bool keep_alive,
                          std::string& out);

/// Appends an interim (1xx) response head: the status line and the end-to-end fields as
/// append_response_head() writes them, then CRLF (no Date, framing or Connection field).
void append_interim_head(const http1::ResponseHead& resp, std::string& out);

/// Request ids: a per-process random prefix plus a counter, in hex ("5f3a9c1e-00000000002a").
/// Cheap (one relaxed atomic increment). Thread-safe.
class RequestIdGenerator {
 public:
  /// Seeds the prefix from getrandom(2).
  RequestIdGenerator();
  explicit RequestIdGenerator(uint32_t prefix) : prefix_(prefix) {}
  /// Writes the next id into buf (kSize bytes) and returns a view of it.
  static constexpr size_t kSize = 21;
  std::string_view next(std::array<char, kSize>& buf);

 private:
  uint32_t prefix_;
  std::atomic<uint64_t> counter_{0};
};

/// W3C Trace Context (https://www.w3.org/TR/trace-context/) traceparent values.
/// "00-<trace-id: 32 lowercase hex>-<parent-id: 16 lowercase hex>-<trace-flags: 2 hex>".
inline constexpr size_t kTraceparentSize = 55;
inline constexpr size_t kTraceIdSize = 32;

/// True for a traceparent corral passes on: version 00 in exactly that shape, with a trace-id
/// and a parent-id that are not all zeros; or a higher version (01 to fe; ff is invalid)
/// whose first 55 characters have that shape, followed by nothing or by '-' and more (the
/// spec's rule for versions a participant does not know). Lowercase hex only. Pure.
bool valid_traceparent(std::string_view value);

/// The trace-id of a valid traceparent (characters 3 to 35); empty otherwise. Pure.
std::string_view trace_id_of(std::string_view traceparent);

/// New traceparents: "00-<random trace-id>-<random parent-id>-01". Flags 01 (sampled): corral
/// keeps no sampling policy of its own, and an app whose tracer samples by its parent (the
/// OpenTelemetry default) then records what it recorded before corral sent a traceparent.
/// xoshiro256** (not a CSPRNG: ids must be unique, not secret). Not thread-safe: one per
/// thread (for_this_thread()).
class TraceParentGenerator {
 public:
  /// Seeds the state from `seed` (splitmix64), for tests.
  explicit TraceParentGenerator(uint64_t seed);
  /// Writes a new traceparent into buf and returns a view of it. Never an all-zero id.
  std::string_view next(std::array<char, kTraceparentSize>& buf);
  /// The calling thread's generator, seeded from getrandom(2) on the thread's first call;
  /// no system call after that.
  static TraceParentGenerator& for_this_thread();

 private:
  uint64_t next64();
  uint64_t s_[4];
};

/// Appends one X-Forwarded-For field value to `chain` (", " between values: RFC 9110 §5.3).
void append_forwarded_for(std::string& chain, std::string_view value);

/// The client of a request from a trusted `peer` whose X-Forwarded-For values are `chain`
/// (nginx's realip with real_ip_recursive on): walking from the right, the first address
/// not in `trusted`; an entry that is not a plain IP address ends the walk at the trusted
/// address to its right; all trusted: the leftmost. A view into `chain` or `peer`. Pure.
std::string_view forwarded_client(std::string_view chain, std::string_view peer, const net::CidrSet& trusted);

/// A per-thread string for the joined X-Forwarded-For of the request being framed.
std::string& forwarded_for_scratch();

/// Appends a decimal number (no allocation).
void append_decimal(std::string& out, uint64_t v);

}  // namespace corral::proxy
