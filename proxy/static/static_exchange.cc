// Exchange::serve_static(): the end of the request pipeline for a static route. Kept apart
// from exchange.cc: the answer comes from proxy/static/, the body is the open file.
#include "common/base/log.h"
#include "common/http1/serializer.h"
#include "proxy/exchange.h"

namespace corral::proxy {

void Exchange::serve_static() {
  const statics::StaticSite& site = *route_entry_->static_site;
  statics::StaticAnswer& a = statics::serve(site, method, target, route_prefix, static_req, route_entry_->fallback >= 0,
                                            host_.loop().now());
  if (a.kind == statics::StaticAnswer::Kind::Fallback) {
    // try_files: no file, so the fallback app gets the request as an app route would.
    app = route_entry_->fallback;
    dispatch(t_queued);
    return;
  }
  state = ExchangeState::Upstream;
  t_sent = t_queued;
  http1::ResponseHead head;
  head.status = a.status;
  head.reason = http1::reason_phrase(a.status);
  head.headers.swap(a.headers);  // the answer's vector keeps its capacity (swapped back below)
  const bool no_body = a.status == 304;
  head.body = no_body ? http1::BodyKind::None : http1::BodyKind::ContentLength;
  head.content_length = a.content_length;
  head.has_content_length = !no_body;
  on_upstream_head(head);
  head.headers.clear();
  head.headers.swap(a.headers);
  if (method != "HEAD") {
    if (a.file && a.length > 0) {
      bytes_sent += a.length;
      sink_.on_response_file(std::move(a.file), a.offset, a.length);
    } else if (!a.body.empty()) {
      on_upstream_body(a.body);
    }
  }
  a.file.reset();
  t_upstream_done = t_sent;
  on_upstream_read_done();  // still Upstream: the sink writes but does not finish the request
  state = ExchangeState::Responding;
  // The last call: the sink may finish the request and reuse this exchange from here.
  sink_.on_response_complete();
}

}  // namespace corral::proxy
