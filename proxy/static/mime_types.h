#pragma once
// File name → Content-Type, from /etc/mime.types (Debian's media-types package; "type ext
// ext ..." lines, '#' comments), read once per config snapshot. When the file cannot be read
// a small built-in table covers what web sites serve. Extensions are matched
// case-insensitively; unknown ones are application/octet-stream. Text types (text/*,
// application/javascript) get "; charset=utf-8": the web's files are UTF-8, and without it
// browsers guess. Immutable after construction; safe to share between threads.
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace corral::proxy::statics {

class MimeTypes {
 public:
  /// Parses mime.types text. Later lines win for an extension listed twice.
  static MimeTypes parse(std::string_view text);
  /// The built-in table (html, css, js, json, svg, png, jpeg, gif, webp, ico, woff, woff2,
  /// wasm, txt, xml, pdf, map, mjs, avif, mp4, webm).
  static MimeTypes builtin();
  /// `path` parsed, or builtin() when it cannot be read (logged once per call).
  static std::shared_ptr<const MimeTypes> load(const std::string& path = "/etc/mime.types");

  /// The Content-Type value for `filename` (by its last extension).
  std::string_view content_type(std::string_view filename) const;
  size_t size() const { return by_ext_.size(); }

 private:
  void add(std::string_view type, std::string_view ext);
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::string, Hash, std::equal_to<>> by_ext_;
};

}  // namespace corral::proxy::statics
