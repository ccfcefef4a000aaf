#include "request_reader.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <strings.h>

namespace testapp {
namespace {

constexpr size_t kMaxBody = 256u << 20;

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool is_token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool parse_decimal(const std::string& s, size_t& out) {
  if (s.empty() || s.size() > 15) return false;
  size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  out = v;
  return true;
}

bool contains_token(const std::string& value, const char* token) {
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    std::string item = trim(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (strcasecmp(item.c_str(), token) == 0) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

}  // namespace

const std::string* Request::header(const std::string& name) const {
  for (auto& [k, v] : headers)
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return &v;
  return nullptr;
}

std::string Request::path() const { return target.substr(0, target.find('?')); }

std::string Request::query(const std::string& key, const std::string& fallback) const {
  size_t q = target.find('?');
  if (q == std::string::npos) return fallback;
  std::string qs = target.substr(q + 1);
  size_t start = 0;
  while (start <= qs.size()) {
    size_t amp = qs.find('&', start);
    std::string item = qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
    size_t eq = item.find('=');
    std::string k = item.substr(0, eq);
    if (k == key) return eq == std::string::npos ? "" : item.substr(eq + 1);
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  return fallback;
}

bool RequestReader::fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  char tmp[16384];
  for (;;) {
    ssize_t n = ::read(fd_, tmp, sizeof tmp);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool RequestReader::read_line(std::string& line) {
  for (;;) {
    size_t eol = buf_.find("\r\n", pos_);
    if (eol != std::string::npos) {
      line = buf_.substr(pos_, eol - pos_);
      pos_ = eol + 2;
      return true;
    }
    if (buf_.size() - pos_ > kMaxHead) return false;
    if (!fill()) return false;
  }
}

ReadStatus RequestReader::parse_head(Request& out, size_t end) {
  out = Request{};
  out.raw_head = buf_.substr(pos_, end - pos_ + 4);
  std::string head = buf_.substr(pos_, end - pos_);
  pos_ = end + 4;

  size_t line_end = head.find("\r\n");
  std::string request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return ReadStatus::Malformed;
  out.method = request_line.substr(0, sp1);
  out.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  out.version = request_line.substr(sp2 + 1);
  if (out.method.empty() || out.target.empty()) return ReadStatus::Malformed;
  if (out.version != "HTTP/1.1" && out.version != "HTTP/1.0") return ReadStatus::Malformed;

  size_t start = line_end == std::string::npos ? head.size() : line_end + 2;
  while (start < head.size()) {
    size_t eol = head.find("\r\n", start);
    std::string line = head.substr(start, eol == std::string::npos ? std::string::npos : eol - start);
    start = eol == std::string::npos ? head.size() : eol + 2;
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return ReadStatus::Malformed;
    std::string name = line.substr(0, colon);
    for (char c : name)
      if (!is_token_char(c)) return ReadStatus::Malformed;
    for (char c : line)
      if (c == '\r' || c == '\n' || c == '\0') return ReadStatus::Malformed;
    out.headers.emplace_back(name, trim(line.substr(colon + 1)));
  }

  const std::string* conn = out.header("Connection");
  if (out.version == "HTTP/1.0")
    out.keep_alive = conn != nullptr && contains_token(*conn, "keep-alive");
  else
    out.keep_alive = conn == nullptr || !contains_token(*conn, "close");
  return ReadStatus::Ok;
}

ReadStatus RequestReader::read_body(Request& out) {
  ReadStatus st = read_body_bytes(out);
  // Compact what has been consumed so the buffer does not grow across requests.
  buf_.erase(0, pos_);
  pos_ = 0;
  return st;
}

ReadStatus RequestReader::read_body_bytes(Request& out) {
  const std::string* te = out.header("Transfer-Encoding");
  const std::string* cl = out.header("Content-Length");
  if (te != nullptr) {
    if (cl != nullptr) return ReadStatus::Malformed;
    std::string last = trim(te->substr(te->rfind(',') == std::string::npos ? 0 : te->rfind(',') + 1));
    if (strcasecmp(last.c_str(), "chunked") != 0) return ReadStatus::Malformed;
    for (;;) {
      std::string line;
      if (!read_line(line)) return ReadStatus::Malformed;
      std::string size_text = trim(line.substr(0, line.find(';')));
      if (size_text.empty() || size_text.size() > 12) return ReadStatus::Malformed;
      char* endp = nullptr;
      unsigned long long size = std::strtoull(size_text.c_str(), &endp, 16);
      if (*endp != '\0') return ReadStatus::Malformed;
      if (out.body.size() + size > kMaxBody) return ReadStatus::Malformed;
      if (size == 0) {
        // Trailers until the empty line.
        for (;;) {
          if (!read_line(line)) return ReadStatus::Malformed;
          if (line.empty()) return ReadStatus::Ok;
        }
      }
      if (out.body_sink) {
        // Piece by piece: the chunk is never held whole.
        size_t left = size;
        while (left > 0) {
          if (buf_.size() == pos_ && !fill()) return ReadStatus::Malformed;
          size_t n = std::min(left, buf_.size() - pos_);
          out.body_sink(buf_.data() + pos_, n);
          pos_ += n;
          left -= n;
          buf_.erase(0, pos_);
          pos_ = 0;
        }
        while (buf_.size() - pos_ < 2)
          if (!fill()) return ReadStatus::Malformed;
        if (buf_.compare(pos_, 2, "\r\n") != 0) return ReadStatus::Malformed;
        pos_ += 2;
        continue;
      }
      while (buf_.size() - pos_ < size + 2)
        if (!fill()) return ReadStatus::Malformed;
      out.body.append(buf_, pos_, size);
      if (buf_.compare(pos_ + size, 2, "\r\n") != 0) return ReadStatus::Malformed;
      pos_ += size + 2;
    }
  }
  if (cl != nullptr) {
    size_t len = 0;
    if (!parse_decimal(*cl, len) || len > kMaxBody) return ReadStatus::Malformed;
    if (out.body_sink) {
      while (len > 0) {
        if (buf_.size() == pos_ && !fill()) return ReadStatus::Malformed;
        size_t n = std::min(len, buf_.size() - pos_);
        out.body_sink(buf_.data() + pos_, n);
        pos_ += n;
        len -= n;
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      return ReadStatus::Ok;
    }
    while (buf_.size() - pos_ < len)
      if (!fill()) return ReadStatus::Malformed;
    out.body.assign(buf_, pos_, len);
    pos_ += len;
  }
  return ReadStatus::Ok;
}

}  // namespace testapp
