#pragma once
// The character and syntax rules of a request line and Host field, one function each:
// RequestParser applies them (the method, an origin-form target and the Host share their
// code with these), and so does code that builds an HTTP/1.1 request out of another
// protocol's fields (the HTTP/2 front end), so a value passing them makes a request line and
// Host field that corral's own strict parser accepts. Pure functions; thread-safe.
#include <string_view>

namespace corral::http1 {

/// True when `method` is a token (RFC 9110 §9.1, §5.6.2): non-empty, tchar only.
bool valid_method(std::string_view method);

/// True when `target` is an origin-form request-target (RFC 9112 §3.2.1: absolute-path
/// ["?" query]) as the parser takes it: starts with "/", only pchar / "/" / "?" characters
/// (no SP, CTL, non-ASCII, "#", quotes, "<", ">", "\", "^", "`", "{", "|", "}", "[", "]"),
/// and every "%" starts a %XX triplet.
bool valid_origin_form(std::string_view target);

/// True when `host` is uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2) as the parser
/// takes a Host field: not empty, no userinfo, an IP-literal in brackets or a reg-name of
/// unreserved / sub-delims / %XX, and an optional port of at most 5 digits.
bool valid_host(std::string_view host);

}  // namespace corral::http1
