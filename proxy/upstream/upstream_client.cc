#include "proxy/upstream/upstream_client.h"

#include "proxy/upstream/http1_client.h"

namespace corral::proxy {

std::unique_ptr<UpstreamClient> make_upstream_client(conf::AppKind kind, UpstreamPool& pool, UpstreamHandler& handler) {
  // Every kind speaks HTTP/1.1 to its worker until a FastCGI client is added here
  // (kind = "fastcgi" → FastcgiClient).
  (void)kind;
  return std::make_unique<Http1Client>(pool, handler);
}

}  // namespace corral::proxy
