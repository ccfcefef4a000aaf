#include "proxy/compress/filter.h"

#include "common/base/strings.h"

namespace corral::proxy::compress {
namespace {

bool subtype_matches(std::string_view pattern, std::string_view sub) {
  if (pattern == "*") return true;
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '+') {
    std::string_view suffix = pattern.substr(1);  // "+json"
    return sub.size() > suffix.size() && iequals(sub.substr(sub.size() - suffix.size()), suffix);
  }
  return iequals(pattern, sub);
}

}  // namespace

std::shared_ptr<const Policy> make_policy(const conf::Route& route) {
  if (route.compress.empty()) return nullptr;
  auto p = std::make_shared<Policy>();
  for (const auto& c : route.compress) p->codings.push_back(c == "br" ? Coding::Br : Coding::Gzip);
  p->min_size = route.compress_min_size;
  for (const auto& t : route.compress_types) p->types.push_back(to_lower(t));
  p->gzip_level = route.gzip_level;
  p->brotli_level = route.brotli_level;
  return p;
}

bool type_matches(const std::vector<std::string>& patterns, std::string_view content_type) {
  size_t semi = content_type.find(';');
  std::string_view media = trim_ows(content_type.substr(0, semi));
  size_t slash = media.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == media.size()) return false;
  std::string_view type = media.substr(0, slash), sub = media.substr(slash + 1);
  for (const auto& p : patterns) {
    std::string_view pat(p);
    size_t ps = pat.find('/');
    if (ps == std::string_view::npos) continue;
    std::string_view ptype = pat.substr(0, ps), psub = pat.substr(ps + 1);
    if (ptype != "*" && !iequals(ptype, type)) continue;
    if (subtype_matches(psub, sub)) return true;
  }
  return false;
}

ResponseFilter::Decision ResponseFilter::start(const Policy& policy, const AcceptEncoding& accept, bool head_request,
                                               const http1::ResponseHead& head, http1::ResponseHead& out) {
  encoder_.release();
  const int st = head.status;
  if (st < 200 || st == 204 || st == 206 || st == 304) return Decision::Pass;
  if (!head_request && head.body == http1::BodyKind::None) return Decision::Pass;
  std::string_view content_type;
  bool have_type = false, vary_covered = false;
  for (const auto& h : head.headers) {
    if (iequals(h.name, "content-encoding") || iequals(h.name, "content-range")) return Decision::Pass;
    if (iequals(h.name, "cache-control") && list_contains(h.value, "no-transform")) return Decision::Pass;
    if (iequals(h.name, "content-type") && !have_type) {
      content_type = h.value;
      have_type = true;
    }
    if (iequals(h.name, "vary") && (list_contains(h.value, "accept-encoding") || list_contains(h.value, "*")))
      vary_covered = true;
  }
  if (!have_type || !type_matches(policy.types, content_type)) return Decision::Pass;
  const bool known_length = head.body == http1::BodyKind::ContentLength || (head_request && head.has_content_length);
  if (known_length && head.content_length < policy.min_size) return Decision::Pass;

  // From here on the answer depends on Accept-Encoding: caches must know.
  Coding coding = Coding::Identity;
  if (!head_request) coding = choose_coding(accept, policy.codings);
  const int level = coding == Coding::Br ? policy.brotli_level : policy.gzip_level;
  if (coding != Coding::Identity && !encoder_.start(coding, level) && coding == Coding::Br) {
    // Over the thread's brotli limit: gzip when the client takes it and the route allows it.
    bool gzip_offered = false;
    for (Coding c : policy.codings) gzip_offered |= c == Coding::Gzip;
    if (gzip_offered && accept.q(Coding::Gzip) > 0) encoder_.start(Coding::Gzip, policy.gzip_level);
  }
  const bool compress = encoder_.active();

  out.status = head.status;
  out.reason = head.reason;
  out.version_minor = head.version_minor;
  out.keep_alive = head.keep_alive;
  out.headers.clear();
  out.headers.reserve(head.headers.size() + 2);
  for (const auto& h : head.headers) {
    if (compress) {
      if (iequals(h.name, "content-length") || iequals(h.name, "accept-ranges")) continue;
      if (iequals(h.name, "etag")) {
        std::string_view v = trim_ows(h.value);
        if (!v.empty() && v.front() == '"') {
          etag_.assign("W/");
          etag_.append(v);
          out.headers.push_back({h.name, etag_});
          continue;
        }
      }
    }
    out.headers.push_back(h);
  }
  if (!vary_covered) out.headers.push_back({"Vary", "Accept-Encoding"});
  if (compress) {
    out.headers.push_back({"Content-Encoding", coding_name(encoder_.coding())});
    out.body = http1::BodyKind::Chunked;  // length unknown until the end
    out.content_length = 0;
    out.has_content_length = false;
    return Decision::Compress;
  }
  out.body = head.body;
  out.content_length = head.content_length;
  out.has_content_length = head.has_content_length;
  return Decision::PassVary;
}

}  // namespace corral::proxy::compress
