#pragma once
// The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends
// before the client's first byte, carrying the client's address and port: a sans-I/O parser
// (parse_proxy_header) and the reader a connection uses to take exactly the header's bytes
// off its socket (ProxyHeaderReader), so what follows (a TLS ClientHello, an HTTP/1.1
// request, the HTTP/2 preface) is left for the next step untouched.
//
// Bounds: a v1 line is at most 107 bytes with its CRLF; a v2 header is 16 bytes plus at most
// kProxyV2MaxPayload of addresses and TLVs. TLVs are checked for framing (each one inside
// the header, the SSL TLV's sub-TLVs inside it, fixed sizes where the spec gives one, a
// CRC32C when sent) and otherwise skipped: nothing a TLV says is used by corral, whose own
// TLS and HTTP decide ALPN, the host and the scheme (the views below are for tests and logs).
//
// What keeps the connection's own peer address (`has_addresses` false): v2 LOCAL (the
// balancer's health checks), v1 UNKNOWN, v2 AF_UNSPEC and AF_UNIX.
#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace corral::proxy {

inline constexpr size_t kProxyV1MaxSize = 107;       ///< "PROXY TCP6 <39> <39> 65535 65535\r\n"
inline constexpr size_t kProxyV2MaxPayload = 4096;   ///< addresses + TLVs after the 16-byte head
inline constexpr size_t kProxyHeaderMaxSize = 16 + kProxyV2MaxPayload;

struct ProxyHeader {
  int version = 0;             ///< 1 or 2
  bool has_addresses = false;  ///< false: keep the connection's peer address (LOCAL, UNKNOWN, ...)
  sockaddr_storage source{};       ///< the client (AF_INET / AF_INET6) when has_addresses
  sockaddr_storage destination{};  ///< the address the client connected to (the balancer's)
  // v2 TLVs, views into the parsed bytes (valid while those bytes are); never acted upon.
  std::string_view alpn;       ///< PP2_TYPE_ALPN
  std::string_view authority;  ///< PP2_TYPE_AUTHORITY (SNI), only when it is a plain host name
  bool ssl = false;            ///< PP2_TYPE_SSL with PP2_CLIENT_SSL: the client spoke TLS to the balancer
  std::string_view ssl_version;  ///< PP2_SUBTYPE_SSL_VERSION
};

enum class ProxyParse { Incomplete, Done, Invalid };

struct ProxyParseResult {
  ProxyParse status = ProxyParse::Incomplete;
  size_t size = 0;         ///< Done: the header's length (the bytes after it are the client's)
  const char* error = "";  ///< Invalid: what is wrong (a string literal)
};

/// Parses the header at the start of `bytes`. Incomplete: `bytes` is a strict prefix of a
/// header that may still be valid (so all of them belong to it); Invalid as soon as a byte
/// rules a header out. Pure; thread-safe.
ProxyParseResult parse_proxy_header(std::string_view bytes, ProxyHeader& out);

/// Reads a PROXY header off a non-blocking stream socket without taking a byte past it:
/// each step peeks at what has arrived, parses, and consumes only header bytes (all of
/// them while it is incomplete, exactly its end once it is complete). Bytes of a header
/// split over several segments are kept here between steps. Loop-affine (one connection).
class ProxyHeaderReader {
 public:
  enum class Step {
    Again,    ///< wait until readable
    Done,     ///< header() is complete (its TLV views are no longer valid)
    Closed,   ///< end of stream or a socket error before the header was complete
    Invalid,  ///< not a PROXY header: error() says why
  };
  Step read(int fd);
  const ProxyHeader& header() const { return header_; }
  const char* error() const { return error_; }
  /// Header bytes consumed so far (for logs).
  size_t consumed() const { return got_.size(); }
  /// After Done: bytes past the header had arrived already (else the next step waits until
  /// the socket is readable, saving a read that would find nothing).
  bool more_ready() const { return more_ready_; }

 private:
  std::string got_;
  ProxyHeader header_;
  const char* error_ = "";
  bool more_ready_ = false;
};

}  // namespace corral::proxy
