// libFuzzer target for the PROXY protocol header (proxy/proxy_protocol.h), the first bytes
// a proxy_protocol listener reads from a balancer. For each input:
//  1. parse it whole: Done only with a size within the input and the version's bound
//     (107 bytes for v1, 16 + 4096 for v2), Invalid always with a reason;
//  2. every strict prefix of a Done header is Incomplete (a header is never recognised
//     early, so the reader never consumes a byte past it), and the header alone parses to
//     the same result;
//  3. fed in two pieces at a point the input picks, the verdict of the first piece is never
//     Done before the header's end, and never Invalid for a prefix of a Done header;
//  4. addresses are there exactly for a v1 TCP4/TCP6 or v2 PROXY TCP line, of the family
//     and size it says; the TLV views lie inside the input.
// Any broken rule aborts, which libFuzzer reports as a crash.
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "proxy/proxy_protocol.h"

using namespace corral::proxy;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_proxy_protocol: %s\n", what);
  std::abort();
}

void require(bool ok, const char* what) {
  if (!ok) fail(what);
}

bool inside(std::string_view v, std::string_view whole) {
  return v.empty() || (v.data() >= whole.data() && v.data() + v.size() <= whole.data() + whole.size());
}

bool same(const ProxyHeader& a, const ProxyHeader& b) {
  return a.version == b.version && a.has_addresses == b.has_addresses &&
         std::memcmp(&a.source, &b.source, sizeof a.source) == 0 &&
         std::memcmp(&a.destination, &b.destination, sizeof a.destination) == 0 && a.alpn == b.alpn &&
         a.authority == b.authority && a.ssl == b.ssl && a.ssl_version == b.ssl_version;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ProxyHeader whole;
  ProxyParseResult r = parse_proxy_header(in, whole);
  if (r.status == ProxyParse::Invalid) require(r.error && *r.error, "Invalid without a reason");
  if (r.status == ProxyParse::Incomplete)
    require(size < kProxyHeaderMaxSize, "Incomplete past the largest header");
  if (r.status != ProxyParse::Done) {
    // Split anywhere: a prefix of an input that is not a header is never a header.
    for (size_t k = 0; k < size; k += 1 + k / 8) {
      ProxyHeader h;
      require(parse_proxy_header(in.substr(0, k), h).status != ProxyParse::Done, "a prefix is Done, the whole is not");
    }
    return 0;
  }
  require(r.size > 0 && r.size <= size, "Done with a size outside the input");
  require(whole.version == 1 || whole.version == 2, "Done without a version");
  require(r.size <= (whole.version == 1 ? kProxyV1MaxSize : kProxyHeaderMaxSize), "header past its bound");
  if (whole.has_addresses) {
    require(whole.source.ss_family == AF_INET || whole.source.ss_family == AF_INET6, "source family");
    require(whole.source.ss_family == whole.destination.ss_family, "source and destination families differ");
  }
  require(inside(whole.alpn, in.substr(0, r.size)) && inside(whole.authority, in.substr(0, r.size)) &&
              inside(whole.ssl_version, in.substr(0, r.size)),
          "a TLV view outside the header");
  ProxyHeader alone;
  ProxyParseResult a = parse_proxy_header(in.substr(0, r.size), alone);
  require(a.status == ProxyParse::Done && a.size == r.size, "the header alone parses differently");
  require(same(whole, alone), "the header alone gives other fields");
  for (size_t k = 0; k < r.size; ++k) {
    ProxyHeader h;
    require(parse_proxy_header(in.substr(0, k), h).status == ProxyParse::Incomplete,
            "a strict prefix of a header is not Incomplete");
  }
  return 0;
}
