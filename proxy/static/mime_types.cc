#include "proxy/static/mime_types.h"

#include <fstream>
#include <sstream>

#include "common/base/log.h"
#include "common/base/strings.h"

namespace corral::proxy::statics {
namespace {

constexpr std::string_view kDefault = "application/octet-stream";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool wants_charset(std::string_view type) {
  return type.substr(0, 5) == "text/" || type == "application/javascript";
}

}  // namespace

void MimeTypes::add(std::string_view type, std::string_view ext) {
  std::string key = to_lower(ext);
  std::string value(type);
  if (wants_charset(type)) value += "; charset=utf-8";
  by_ext_.insert_or_assign(std::move(key), std::move(value));
}

MimeTypes MimeTypes::parse(std::string_view text) {
  MimeTypes m;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::string_view type;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_space(line[i])) ++i;
      size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      if (i == start) break;
      std::string_view word = line.substr(start, i - start);
      if (type.empty()) {
        // A media type has exactly one '/', and no control characters or quotes.
        if (word.find('/') == std::string_view::npos) break;
        bool ok = true;
        for (char c : word)
          if (static_cast<unsigned char>(c) < 0x21 || c == '"' || c == ';' || c == 0x7f) ok = false;
        if (!ok) break;
        type = word;
      } else {
        m.add(type, word);
      }
    }
  }
  return m;
}

MimeTypes MimeTypes::builtin() {
  static constexpr std::string_view kTable =
      "text/html html htm\n"
      "text/css css\n"
      "text/javascript js mjs\n"
      "application/json json map\n"
      "text/plain txt\n"
      "application/xml xml\n"
      "image/svg+xml svg svgz\n"
      "image/png png\n"
      "image/jpeg jpg jpeg\n"
      "image/gif gif\n"
      "image/webp webp\n"
      "image/avif avif\n"
      "image/vnd.microsoft.icon ico\n"
      "font/woff woff\n"
      "font/woff2 woff2\n"
      "application/wasm wasm\n"
      "application/pdf pdf\n"
      "video/mp4 mp4\n"
      "video/webm webm\n";
  return parse(kTable);
}

std::shared_ptr<const MimeTypes> MimeTypes::load(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::ostringstream os;
    os << in.rdbuf();
    auto m = std::make_shared<MimeTypes>(parse(os.str()));
    if (m->size() > 0) return m;
  }
  CORRAL_LOG(Warn, "static") << "cannot read " << path << " (package media-types); using a built-in table of types";
  return std::make_shared<MimeTypes>(builtin());
}

std::string_view MimeTypes::content_type(std::string_view filename) const {
  size_t slash = filename.rfind('/');
  if (slash != std::string_view::npos) filename = filename.substr(slash + 1);
  size_t dot = filename.rfind('.');
  if (dot == std::string_view::npos || dot + 1 >= filename.size() || filename.size() - dot > 32) return kDefault;
  char buf[32];
  size_t n = 0;
  for (char c : filename.substr(dot + 1)) buf[n++] = ascii_lower(c);
  auto it = by_ext_.find(std::string_view(buf, n));
  return it == by_ext_.end() ? kDefault : std::string_view(it->second);
}

}  // namespace corral::proxy::statics
