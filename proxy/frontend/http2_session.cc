#include "proxy/frontend/http2_session.h"

#include "proxy/frontend/http1_session.h"

namespace corral::proxy {

// Until the HTTP/2 session lands, the preface goes to HTTP/1.1, which answers 400 as before.
std::unique_ptr<FrontendSession> make_http2_session(ClientConnection& conn) {
  return std::make_unique<Http1Session>(conn);
}

}  // namespace corral::proxy
