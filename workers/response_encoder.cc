#include "workers/response_encoder.h"

#include <vector>

#include "common/base/strings.h"
#include "common/http1/serializer.h"

namespace corral::worker {

void ResponseEncoder::head(std::string& out, int status, std::string_view reason,
                           std::span<const std::pair<std::string, std::string>> headers,
                           std::optional<uint64_t> content_length) {
  if (head_sent_) return;
  head_sent_ = true;
  std::vector<http1::Header> fields;
  fields.reserve(headers.size() + 1);
  for (auto& [name, value] : headers) {
    if (iequals(name, "connection") || iequals(name, "keep-alive")) continue;
    fields.push_back(http1::Header{name, value});
  }
  if (!keep_alive_) fields.push_back(http1::Header{"Connection", "close"});
  const bool bodiless = status == 204 || status == 304;
  http1::BodyFraming framing = http1::BodyFraming::chunked();
  if (bodiless) framing = http1::BodyFraming::none();
  else if (content_length) framing = http1::BodyFraming::content_length(*content_length);
  // HEAD: the app's Content-Length (the GET's) when it gave one; otherwise no framing field
  // at all, since "Content-Length: 0" would claim an empty GET body (RFC 9110 §9.3.2).
  if (head_request_ && !content_length && !bodiless) framing = http1::BodyFraming::none();
  chunked_ = framing.kind == http1::BodyFraming::Kind::Chunked;
  if (bodiless || head_request_) remaining_ = 0;
  else if (content_length) remaining_ = *content_length;
  http1::append_response_head(out, status, fields, framing, reason);
}

std::string_view ResponseEncoder::frame_body(std::string& prefix, std::string_view& data) {
  if (!head_sent_ || finished_ || head_request_) data = {};
  if (data.empty()) return {};
  if (remaining_) {
    if (data.size() > *remaining_) data = data.substr(0, *remaining_);
    *remaining_ -= data.size();
    return {};
  }
  http1::append_chunk_header(prefix, data.size());
  return "\r\n";
}

void ResponseEncoder::body(std::string& out, std::string_view data) {
  std::string_view suffix = frame_body(out, data);
  out.append(data);
  out.append(suffix);
}

bool ResponseEncoder::finish(std::string& out) {
  if (!head_sent_ || finished_) return true;
  finished_ = true;
  if (chunked_) {
    http1::append_last_chunk(out);
    return true;
  }
  if (remaining_ && *remaining_ > 0) {
    keep_alive_ = false;
    return false;
  }
  return true;
}

}  // namespace corral::worker
