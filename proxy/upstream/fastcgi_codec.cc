#include "proxy/upstream/fastcgi_codec.h"

#include <algorithm>

namespace corral::proxy::fastcgi {
namespace {

void append_length(std::string& out, size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<char>(len));
    return;
  }
  out.push_back(static_cast<char>(0x80 | ((len >> 24) & 0x7f)));
  out.push_back(static_cast<char>((len >> 16) & 0xff));
  out.push_back(static_cast<char>((len >> 8) & 0xff));
  out.push_back(static_cast<char>(len & 0xff));
}

constexpr size_t kMaxPairLength = 0x7fffffff;

}  // namespace

void append_header(std::string& out, RecordType type, uint16_t request_id, uint16_t content_length,
                   uint8_t padding_length) {
  char h[kHeaderSize] = {
      static_cast<char>(kVersion),
      static_cast<char>(type),
      static_cast<char>(request_id >> 8),
      static_cast<char>(request_id & 0xff),
      static_cast<char>(content_length >> 8),
      static_cast<char>(content_length & 0xff),
      static_cast<char>(padding_length),
      0,
  };
  out.append(h, kHeaderSize);
}

void append_begin_request(std::string& out, uint16_t request_id, bool keep_conn) {
  append_header(out, RecordType::BeginRequest, request_id, 8, 0);
  char body[8] = {0, static_cast<char>(kRoleResponder), static_cast<char>(keep_conn ? kFlagKeepConn : 0), 0, 0, 0, 0, 0};
  out.append(body, sizeof body);
}

bool append_name_value(std::string& out, std::string_view name, std::string_view value) {
  if (name.size() > kMaxPairLength || value.size() > kMaxPairLength) return false;
  append_length(out, name.size());
  append_length(out, value.size());
  out.append(name);
  out.append(value);
  return true;
}

void append_params(std::string& out, uint16_t request_id,
                   std::span<const std::pair<std::string, std::string>> params) {
  // Pairs are encoded into one contiguous stream and cut into records afterwards: the
  // specification lets a pair span records, and this keeps every record but the last full.
  std::string stream;
  size_t want = 0;
  for (const auto& [n, v] : params) want += n.size() + v.size() + 8;
  stream.reserve(want);
  for (const auto& [n, v] : params) (void)append_name_value(stream, n, v);
  out.reserve(out.size() + stream.size() + (stream.size() / kMaxContent + 2) * (kHeaderSize + 8));
  static constexpr char kZeros[8] = {};
  for (size_t off = 0; off < stream.size(); off += kMaxContent) {
    size_t n = std::min(kMaxContent, stream.size() - off);
    auto pad = static_cast<uint8_t>((8 - n % 8) % 8);
    append_header(out, RecordType::Params, request_id, static_cast<uint16_t>(n), pad);
    out.append(stream, off, n);
    out.append(kZeros, pad);
  }
  append_header(out, RecordType::Params, request_id, 0, 0);
}

void Decoder::start(uint16_t request_id) {
  state_ = State::Header;
  request_id_ = request_id;
  content_left_ = padding_left_ = 0;
  why_ = "";
}

Decoder::Event Decoder::step(std::string_view buf) {
  Event e;
  size_t used = 0;
  while (true) {
    switch (state_) {
      case State::Failed: return fail(why_);
      case State::Ended:
        if (used < buf.size()) return fail("bytes after END_REQUEST", used);
        e.consumed = used;
        return e;
      case State::Padding: {
        size_t n = std::min(padding_left_, buf.size() - used);
        used += n;
        padding_left_ -= n;
        if (padding_left_ > 0) {
          e.consumed = used;
          return e;
        }
        state_ = State::Header;
        break;
      }
      case State::Content: {
        size_t n = std::min(content_left_, buf.size() - used);
        if (n == 0) {
          e.consumed = used;
          return e;
        }
        e.kind = type_ == RecordType::Stdout ? Kind::Stdout : Kind::Stderr;
        e.data = buf.substr(used, n);
        used += n;
        content_left_ -= n;
        if (content_left_ == 0) state_ = padding_left_ ? State::Padding : State::Header;
        e.consumed = used;
        return e;
      }
      case State::Header: {
        std::string_view rest = buf.substr(used);
        if (rest.size() < kHeaderSize) {
          e.consumed = used;
          return e;
        }
        auto byte = [&](size_t i) { return static_cast<uint8_t>(rest[i]); };
        if (byte(0) != kVersion) return fail("FastCGI record with a version other than 1", used);
        auto type = static_cast<RecordType>(byte(1));
        uint16_t id = static_cast<uint16_t>((byte(2) << 8) | byte(3));
        size_t content = static_cast<size_t>((byte(4) << 8) | byte(5));
        size_t padding = byte(6);
        if (type != RecordType::Stdout && type != RecordType::Stderr && type != RecordType::EndRequest)
          return fail("unexpected FastCGI record type", used);
        if (id != request_id_) return fail("FastCGI record for another request id", used);
        if (type == RecordType::EndRequest) {
          if (content != 8) return fail("END_REQUEST body is not 8 bytes", used);
          // Small and fixed: wait for the whole record, padding included.
          if (rest.size() < kHeaderSize + content + padding) {
            e.consumed = used;
            return e;
          }
          const char* b = rest.data() + kHeaderSize;
          auto ub = [&](int i) { return static_cast<uint32_t>(static_cast<uint8_t>(b[i])); };
          e.kind = Kind::End;
          e.app_status = (ub(0) << 24) | (ub(1) << 16) | (ub(2) << 8) | ub(3);
          e.protocol_status = static_cast<ProtocolStatus>(b[4]);
          used += kHeaderSize + content + padding;
          state_ = State::Ended;
          // Bytes after it are an Error at the next step, whether they came in this read or
          // a later one: the response is complete either way (the caller drops the connection).
          e.consumed = used;
          return e;
        }
        used += kHeaderSize;
        type_ = type;
        content_left_ = content;
        padding_left_ = padding;
        state_ = content ? State::Content : (padding ? State::Padding : State::Header);
        break;
      }
    }
  }
}

}  // namespace corral::proxy::fastcgi
