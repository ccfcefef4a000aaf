#pragma once
// Internal to common/http1: the pieces shared by RequestParser and ResponseParser. The scan
// finds the end of a head (CRLF CRLF) with memchr, resuming where the previous Incomplete
// call stopped, and rejects bare LF, bare CR at a line start and junk before the start line
// as soon as they arrive. The field-line and framing helpers run once on a complete head.
// Not thread-safe (per-parser state); no allocation.
#include <cstdint>
#include <string_view>

#include "common/http1/parser.h"

namespace corral::http1::detail {

enum class ScanStatus { Incomplete, Done, Error };

/// Advances `s` over buf. On Done, s.first_line_end and s.head_end are set. `is_request`
/// allows one leading CRLF and selects 414/431 (requests) or 502 (responses) for size errors.
ScanStatus scan_head(HeadScan& s, std::string_view buf, const Limits& limits, bool is_request);

/// Splits one field line (without its CRLF) into name and OWS-trimmed value. Returns a
/// static reason on a syntax error, nullptr on success.
const char* parse_field_line(std::string_view line, Header& out);

/// Framing and connection facts collected from the header fields of one message.
struct FieldFacts {
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool has_transfer_encoding = false;
  bool te_chunked_final = false;  ///< the last transfer coding is chunked (and only once)
  bool te_unknown = false;        ///< a coding other than chunked was listed
  int host_count = 0;
  std::string_view host;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool expect_continue = false;
  bool expect_other = false;
  int upgrade_count = 0;
  std::string_view upgrade;  ///< the first Upgrade field's value
  bool conn_upgrade = false; ///< Connection lists "upgrade"
};

/// Applies one header to `facts`. Returns a static reason for a malformed framing field
/// (status 400 for requests), nullptr otherwise. A syntactically valid but unsupported
/// transfer coding only sets facts.te_unknown (the caller answers 501).
const char* apply_field(const Header& h, FieldFacts& facts);

/// True when `host` is a syntactically valid uri-host [ ":" port ] (empty allowed when
/// `allow_empty`).
/// True when every '%' in s starts a "%" HEXDIG HEXDIG triplet.
bool valid_pct_run(std::string_view s);

/// True when `s` is made of the characters a path and query may hold (pchar / "/" / "?",
/// no "[" or "]") with every '%' starting a %XX triplet: the part of a request-target after
/// the authority (origin-form, or the rest of an absolute-form target).
bool valid_path_query(std::string_view s);

bool valid_authority(std::string_view host, bool allow_empty, bool require_port);

}  // namespace corral::http1::detail
