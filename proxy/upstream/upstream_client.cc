#include "proxy/upstream/upstream_client.h"

#include "proxy/upstream/fastcgi_client.h"
#include "proxy/upstream/http1_client.h"

namespace corral::proxy {

std::unique_ptr<UpstreamClient> make_upstream_client(conf::AppKind kind, UpstreamPool& pool, UpstreamHandler& handler) {
  // http and wsgi apps speak HTTP/1.1 themselves; cgi apps are hosted by corral-worker,
  // which speaks HTTP/1.1; fastcgi apps are FastCGI responders.
  if (kind == conf::AppKind::Fastcgi) return std::make_unique<FastcgiClient>(pool, handler);
  return std::make_unique<Http1Client>(pool, handler);
}

}  // namespace corral::proxy
