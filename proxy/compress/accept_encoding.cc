#include "proxy/compress/accept_encoding.h"

#include "common/base/strings.h"

namespace corral::proxy::compress {
namespace {

// "q=0.5" among the element's parameters; 1000 when there is none, -1 when malformed.
int element_q(std::string_view params) {
  int q = 1000;
  while (!params.empty()) {
    size_t semi = params.find(';');
    std::string_view p = trim_ows(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (p.empty()) continue;
    size_t eq = p.find('=');
    if (eq == std::string_view::npos) continue;
    if (!iequals(trim_ows(p.substr(0, eq)), "q")) continue;  // other parameters mean nothing here
    q = parse_qvalue(trim_ows(p.substr(eq + 1)));
    if (q < 0) return -1;
  }
  return q;
}

void keep(int& slot, int q) {
  // A coding named twice: the higher value wins, whatever the order.
  if (q > slot) slot = q;
}

}  // namespace

std::string_view coding_name(Coding c) {
  switch (c) {
    case Coding::Identity: return "identity";
    case Coding::Gzip: return "gzip";
    case Coding::Br: return "br";
  }
  return "identity";
}

int parse_qvalue(std::string_view v) {
  // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
  if (v.empty() || v.size() > 5) return -1;
  if (v[0] != '0' && v[0] != '1') return -1;
  int whole = v[0] - '0';
  if (v.size() == 1) return whole * 1000;
  if (v[1] != '.') return -1;
  int frac = 0, digits = 0;
  for (size_t i = 2; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return -1;
    frac = frac * 10 + (v[i] - '0');
    ++digits;
  }
  while (digits < 3) {
    frac *= 10;
    ++digits;
  }
  if (whole == 1 && frac != 0) return -1;
  return whole * 1000 + frac;
}

void AcceptEncoding::add(std::string_view value) {
  present = true;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view element = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    size_t semi = element.find(';');
    std::string_view name = trim_ows(element.substr(0, semi));
    if (name.empty()) continue;
    int q = element_q(semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1));
    if (q < 0) q = 0;
    if (iequals(name, "gzip") || iequals(name, "x-gzip")) keep(gzip, q);
    else if (iequals(name, "br")) keep(br, q);
    else if (iequals(name, "identity")) keep(identity, q);
    else if (name == "*") keep(star, q);
  }
}

int AcceptEncoding::q(Coding c) const {
  int named = c == Coding::Gzip ? gzip : c == Coding::Br ? br : identity;
  if (named >= 0) return named;
  if (star >= 0) return star;
  return c == Coding::Identity ? 1000 : 0;
}

Coding choose_coding(const AcceptEncoding& accept, std::span<const Coding> offered) {
  if (!accept.present) return Coding::Identity;
  Coding best = Coding::Identity;
  int best_q = 0;
  for (Coding c : offered) {
    if (c == Coding::Identity) continue;
    int q = accept.q(c);
    if (q > best_q) {
      best = c;
      best_q = q;
    }
  }
  if (best != Coding::Identity && accept.identity > best_q) return Coding::Identity;
  return best;
}

}  // namespace corral::proxy::compress
