#pragma once
// Accept-Encoding (RFC 9110 §12.5.3) as the response compressor reads it: the q-value the
// client gives each coding the proxy can produce, "*" for codings it does not name, and
// identity. Pure; thread-safe.
#include <span>
#include <string_view>

namespace corral::proxy::compress {

/// A content coding the proxy produces ("identity" = sent as is).
enum class Coding : unsigned char { Identity, Gzip, Br };

/// "identity", "gzip", "br".
std::string_view coding_name(Coding c);

/// What one or more Accept-Encoding fields say. q-values are in thousandths (0..1000);
/// -1 = the coding is not named.
struct AcceptEncoding {
  int gzip = -1;
  int br = -1;
  int identity = -1;
  int star = -1;
  bool present = false;  ///< at least one Accept-Encoding field was seen

  /// Adds one field value ("gzip;q=0.8, br, *;q=0"); call once per field (several fields
  /// are one comma-separated list). Malformed elements are ignored; a malformed q-value
  /// makes its element count as q=0 (never as a wish for compression).
  void add(std::string_view field_value);
  /// The client's q-value for `c` (1000 = best, 0 = not acceptable): the named value, else
  /// "*"'s, else 0 for a coding and 1000 for identity (always acceptable unless excluded).
  int q(Coding c) const;
};

/// The coding to answer with: among `offered` (the route's list, preferred first), the one
/// with the highest q above 0; a tie goes to the earlier in `offered`. Identity when the
/// client accepts none of them, sent no Accept-Encoding, or prefers identity outright
/// (an explicit identity q above the best coding's).
Coding choose_coding(const AcceptEncoding& accept, std::span<const Coding> offered);

/// Parses a q-value ("1", "0.8", "0.125", "1.000") into thousandths; -1 when malformed.
int parse_qvalue(std::string_view v);

}  // namespace corral::proxy::compress
