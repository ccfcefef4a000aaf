#include <algorithm>

#include "common/http1/chars.h"
#include "common/http1/parser.h"

namespace corral::http1 {

void BodyDecoder::start(BodyKind kind, uint64_t content_length) {
  *this = BodyDecoder();
  switch (kind) {
    case BodyKind::None:
      state_ = State::Done;
      break;
    case BodyKind::ContentLength:
      remaining_ = content_length;
      state_ = content_length == 0 ? State::Done : State::Length;
      break;
    case BodyKind::Chunked:
      state_ = State::ChunkSize;
      break;
    case BodyKind::UntilClose:
      state_ = State::UntilClose;
      break;
  }
}

bool BodyDecoder::on_eof() {
  if (state_ == State::UntilClose) state_ = State::Done;
  return state_ == State::Done;
}

// One byte of a chunk extension, after the chunk size: (";" token ["=" (token | quoted-string)])*
// ended by CR. No BWS (stricter than RFC 9112 §7.1.1).
bool BodyDecoder::chunk_ext_byte(char c, ParseError& why) {
  if (++ext_bytes_ > kMaxChunkExtension) {
    why = {400, "chunk extension too long"};
    return false;
  }
  switch (ext_) {
    case Ext::NameStart:
      if (chars::is_token(c)) {
        ext_ = Ext::Name;
        return true;
      }
      break;
    case Ext::Name:
    case Ext::Token:
    case Ext::AfterQuoted:
      if (c == ';') {
        ext_ = Ext::NameStart;
        return true;
      }
      if (ext_ == Ext::Name && c == '=') {
        ext_ = Ext::ValueStart;
        return true;
      }
      if (ext_ != Ext::AfterQuoted && chars::is_token(c)) return true;
      break;
    case Ext::ValueStart:
      if (c == '"') {
        ext_ = Ext::Quoted;
        return true;
      }
      if (chars::is_token(c)) {
        ext_ = Ext::Token;
        return true;
      }
      break;
    case Ext::Quoted:
      if (c == '"') {
        ext_ = Ext::AfterQuoted;
        return true;
      }
      if (c == '\\') {
        ext_ = Ext::QuotedEscape;
        return true;
      }
      if (chars::is(c, chars::kQdText)) return true;
      break;
    case Ext::QuotedEscape:
      // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
      if (chars::is_field_value(c)) {
        ext_ = Ext::Quoted;
        return true;
      }
      break;
  }
  why = {400, "invalid chunk extension"};
  return false;
}

// One byte of a trailer field line (not its CR). Same rules as header field lines.
bool BodyDecoder::trailer_byte(char c, ParseError& why) {
  if (++trailer_bytes_ > kMaxTrailerBytes) {
    why = {431, "trailer section too large"};
    return false;
  }
  if (trailer_in_value_) {
    if (chars::is_field_value(c)) return true;
    why = {400, "invalid character in trailer value"};
    return false;
  }
  if (c == ':') {
    if (trailer_name_len_ == 0) {
      why = {400, "empty trailer field name"};
      return false;
    }
    trailer_in_value_ = true;
    return true;
  }
  if (chars::is_token(c)) {
    ++trailer_name_len_;
    return true;
  }
  if (trailer_name_len_ == 0 && (c == ' ' || c == '\t'))
    why = {400, "obsolete line folding in trailer"};
  else if (c == ' ' || c == '\t')
    why = {400, "whitespace between trailer name and colon"};
  else
    why = {400, "invalid character in trailer name"};
  return false;
}

BodyDecoder::Step BodyDecoder::step(std::string_view in) {
  Step r;
  if (state_ == State::Error) {
    r.error = true;
    r.why = error_;
    return r;
  }
  size_t i = 0;
  const size_t n = in.size();
  auto fail = [&](int status, const char* reason) {
    state_ = State::Error;
    error_ = ParseError{status, reason};
    r.consumed = i;
    r.error = true;
    r.why = error_;
    return r;
  };
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::Idle:
        return fail(400, "body decoder not started");
      case State::Done:
        r.consumed = i;
        r.done = true;
        return r;
      case State::Error:
        return fail(error_.status, error_.reason);
      case State::Length: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        r.data = in.substr(i, take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::Done;
        r.consumed = i + take;
        r.done = state_ == State::Done;
        return r;
      }
      case State::UntilClose:
        r.data = in.substr(i);
        r.consumed = n;
        return r;
      case State::ChunkSize:
        if (chars::is_hex(c)) {
          // At most 16 digits and below 2^63: anything larger is an attack, not a body.
          if (++chunk_digits_ > 16 || (remaining_ >> 59) != 0) return fail(400, "chunk size too large");
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(chars::hex_value(c));
        } else if (chunk_digits_ == 0) {
          return fail(400, "invalid chunk size");
        } else if (c == ';') {
          state_ = State::ChunkExt;
          ext_ = Ext::NameStart;
          ext_bytes_ = 0;
        } else if (c == '\r') {
          state_ = State::ChunkSizeLf;
        } else {
          return fail(400, "invalid character after chunk size");
        }
        ++i;
        break;
      case State::ChunkExt:
        if (c == '\r') {
          if (ext_ != Ext::Name && ext_ != Ext::Token && ext_ != Ext::AfterQuoted)
            return fail(400, "invalid chunk extension");
          state_ = State::ChunkSizeLf;
        } else if (!chunk_ext_byte(c, error_)) {
          return fail(error_.status, error_.reason);
        }
        ++i;
        break;
      case State::ChunkSizeLf:
        if (c != '\n') return fail(400, "bare CR in chunk line");
        ++i;
        chunk_digits_ = 0;
        if (remaining_ == 0) {
          state_ = State::Trailer;
        } else {
          state_ = State::ChunkData;
        }
        break;
      case State::ChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        r.data = in.substr(i, take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::ChunkDataCr;
        r.consumed = i + take;
        return r;
      }
      case State::ChunkDataCr:
        if (c != '\r') return fail(400, "chunk data not followed by CRLF");
        state_ = State::ChunkDataLf;
        ++i;
        break;
      case State::ChunkDataLf:
        if (c != '\n') return fail(400, "chunk data not followed by CRLF");
        state_ = State::ChunkSize;
        ++i;
        break;
      case State::Trailer:
        // Start of a trailer line, or the CRLF that ends the message.
        if (c == '\r') {
          state_ = State::TrailerLf;
        } else if (c == '\n') {
          return fail(400, "bare LF in trailer section");
        } else {
          if (++trailer_count_ > kMaxTrailerFields) return fail(431, "too many trailer fields");
          trailer_name_len_ = 0;
          trailer_in_value_ = false;
          if (!trailer_byte(c, error_)) return fail(error_.status, error_.reason);
          state_ = State::TrailerLine;
        }
        ++i;
        break;
      case State::TrailerLf:
        if (c != '\n') return fail(400, "bare CR in trailer section");
        ++i;
        state_ = State::Done;
        r.consumed = i;
        r.done = true;
        return r;
      case State::TrailerLine:
        if (c == '\r') {
          if (!trailer_in_value_) return fail(400, "trailer field line without colon");
          state_ = State::TrailerLineLf;
        } else if (!trailer_byte(c, error_)) {
          return fail(error_.status, error_.reason);
        }
        ++i;
        break;
      case State::TrailerLineLf:
        if (c != '\n') return fail(400, "bare CR in trailer section");
        state_ = State::Trailer;
        ++i;
        break;
    }
  }
  r.consumed = i;
  r.done = state_ == State::Done;
  return r;
}

}  // namespace corral::http1
