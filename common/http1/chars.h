#pragma once
// Character classes of RFC 9110/9112/3986 as 256-entry tables, for the HTTP/1.1 codec.
// Internal to common/http1; constant data, thread-safe.
#include <array>
#include <cstdint>

namespace corral::http1::chars {

enum : uint8_t {
  kToken = 1,        ///< tchar (RFC 9110 §5.6.2)
  kFieldValue = 2,   ///< VCHAR / obs-text / SP / HTAB (field-value and reason-phrase)
  kTarget = 4,       ///< request-target: unreserved / sub-delims / ":" "@" "/" "?" "%" "[" "]"
  kHex = 8,          ///< HEXDIG
  kHostChar = 16,    ///< reg-name / IP-literal characters in Host: unreserved sub-delims "%" ":" "[" "]"
  kQdText = 32,      ///< qdtext of quoted-string: HTAB SP %x21 %x23-5B %x5D-7E obs-text
};

constexpr std::array<uint8_t, 256> make_table() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    uint8_t v = 0;
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool alnum = alpha || digit;
    if (alnum) v |= kToken;
    for (char s : {'!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~'})
      if (c == s) v |= kToken;
    if (c == ' ' || c == '\t' || (c >= 0x21 && c <= 0x7e) || c >= 0x80) v |= kFieldValue;
    if (c == ' ' || c == '\t' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) ||
        c >= 0x80)
      v |= kQdText;
    bool unreserved = alnum || c == '-' || c == '.' || c == '_' || c == '~';
    bool sub_delim = false;
    for (char s : {'!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '='})
      if (c == s) sub_delim = true;
    if (unreserved || sub_delim || c == ':' || c == '@' || c == '/' || c == '?' || c == '%' || c == '[' ||
        c == ']')
      v |= kTarget;
    if (unreserved || sub_delim || c == '%' || c == ':' || c == '[' || c == ']') v |= kHostChar;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    t[static_cast<size_t>(c)] = v;
  }
  return t;
}

inline constexpr std::array<uint8_t, 256> kTable = make_table();

inline bool is(char c, uint8_t cls) { return (kTable[static_cast<uint8_t>(c)] & cls) != 0; }
inline bool is_token(char c) { return is(c, kToken); }
inline bool is_field_value(char c) { return is(c, kFieldValue); }
inline bool is_hex(char c) { return is(c, kHex); }
inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

}  // namespace corral::http1::chars
