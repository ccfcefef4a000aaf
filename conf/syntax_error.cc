#include "conf/syntax_error.h"

#include <cstdio>
#include <map>
#include <optional>
#include <vector>

namespace corral::conf {
namespace {

enum class Kind { Array, InlineTable, BasicString, LiteralString, MultiBasicString, MultiLiteralString, Header, ArrayHeader };

struct Opened {
  Kind kind;
  size_t at;  ///< byte offset of the opening character
};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Array: return "array";
    case Kind::InlineTable: return "inline table";
    case Kind::BasicString:
    case Kind::LiteralString: return "string";
    case Kind::MultiBasicString:
    case Kind::MultiLiteralString: return "multi-line string";
    case Kind::Header:
    case Kind::ArrayHeader: return "table header";
  }
  return "value";
}

const char* closer(Kind k) {
  switch (k) {
    case Kind::Array: return "]";
    case Kind::InlineTable: return "}";
    case Kind::BasicString: return "\"";
    case Kind::LiteralString: return "'";
    case Kind::MultiBasicString: return "\"\"\"";
    case Kind::MultiLiteralString: return "'''";
    case Kind::Header: return "]";
    case Kind::ArrayHeader: return "]]";
  }
  return "";
}

bool is_string(Kind k) {
  return k == Kind::BasicString || k == Kind::LiteralString || k == Kind::MultiBasicString ||
         k == Kind::MultiLiteralString;
}

/// What was being read at the error: the dotted key of the value (or key) under way, and
/// the innermost construct still open.
struct Context {
  std::string key;
  std::optional<Opened> open;
};

/// A dotted key or table name as the loader spells it: no quotes, no blanks around dots.
std::string normalize_key(std::string_view raw) {
  std::string out;
  for (char c : raw)
    if (c != ' ' && c != '\t' && c != '"' && c != '\'' && c != '\r' && c != '\n') out += c;
  return out;
}

// A small TOML reader that only tracks where things open and close, up to byte `end` of a
// file toml++ rejected at `end`. It never fails: on text it does not understand it goes on.
Context scan(std::string_view text, size_t end) {
  std::string table;                  // "app.shop", "listener[1]"
  std::map<std::string, int> arrays;  // [[name]] headers seen so far
  std::vector<Opened> open;           // of the current value
  std::string key;                    // key of the current key/value pair
  bool in_value = false;
  auto join = [&](const std::string& k) { return table.empty() || k.empty() ? k : table + "." + k; };
  auto starts = [&](size_t i, std::string_view s) { return text.substr(i, s.size()) == s; };
  size_t i = 0;
  while (i < end) {
    char c = text[i];
    if (!open.empty() && is_string(open.back().kind)) {
      Kind k = open.back().kind;
      if ((k == Kind::BasicString || k == Kind::MultiBasicString) && c == '\\') {
        i += 2;
      } else if (k == Kind::BasicString && c == '"') {
        open.pop_back(), ++i;
      } else if (k == Kind::LiteralString && c == '\'') {
        open.pop_back(), ++i;
      } else if ((k == Kind::BasicString || k == Kind::LiteralString) && c == '\n') {
        open.pop_back();  // toml++ stopped here if the error is here; else go on as if closed
      } else if ((k == Kind::MultiBasicString && starts(i, "\"\"\"")) ||
                 (k == Kind::MultiLiteralString && starts(i, "'''"))) {
        open.pop_back(), i += 3;
        for (int extra = 0; extra < 2 && i < end && text[i] == c; ++extra) ++i;  // up to two quotes end the content
      } else {
        ++i;
      }
      continue;
    }
    if (!in_value) {
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++i;
        continue;
      }
      if (c == '#') {
        while (i < end && text[i] != '\n') ++i;
        continue;
      }
      if (c == '[') {
        bool array = starts(i, "[[");
        size_t close = text.find(array ? "]]" : "]", i);
        size_t eol = text.find('\n', i);
        if (close == std::string_view::npos || close >= end || (eol != std::string_view::npos && eol < close)) {
          return Context{"", Opened{array ? Kind::ArrayHeader : Kind::Header, i}};
        }
        std::string name = normalize_key(text.substr(i + (array ? 2 : 1), close - i - (array ? 2 : 1)));
        table = array ? name + "[" + std::to_string(arrays[name]++) + "]" : name;
        i = close + (array ? 2 : 1);
        continue;
      }
      size_t eq = text.find('=', i);
      size_t eol = text.find('\n', i);
      if (eq == std::string_view::npos || eq >= end) {
        return Context{join(normalize_key(text.substr(i, std::min(end, eol) - i))), std::nullopt};
      }
      if (eol != std::string_view::npos && eol < eq) {  // not a key/value pair; toml++ said why
        i = eol;
        continue;
      }
      key = normalize_key(text.substr(i, eq - i));
      in_value = true;
      i = eq + 1;
      continue;
    }
    switch (c) {
      case '"':
        open.push_back({starts(i, "\"\"\"") ? Kind::MultiBasicString : Kind::BasicString, i});
        i += open.back().kind == Kind::MultiBasicString ? 3 : 1;
        continue;
      case '\'':
        open.push_back({starts(i, "'''") ? Kind::MultiLiteralString : Kind::LiteralString, i});
        i += open.back().kind == Kind::MultiLiteralString ? 3 : 1;
        continue;
      case '[': open.push_back({Kind::Array, i}); break;
      case '{': open.push_back({Kind::InlineTable, i}); break;
      case ']':
        if (!open.empty() && open.back().kind == Kind::Array) open.pop_back();
        break;
      case '}':
        if (!open.empty() && open.back().kind == Kind::InlineTable) open.pop_back();
        break;
      case '#':
        while (i < end && text[i] != '\n') ++i;
        continue;
      case '\n':
        if (open.empty()) in_value = false, key.clear();
        break;
      default: break;
    }
    ++i;
  }
  if (!in_value) return Context{};
  return Context{join(key), open.empty() ? std::nullopt : std::optional<Opened>(open.back())};
}

/// Byte offset of 1-based (line, column in code points), clamped to the text.
size_t offset_of(std::string_view text, int line, int column) {
  size_t i = 0;
  for (int l = 1; l < line && i < text.size(); ++i)
    if (text[i] == '\n') ++l;
  for (int col = 1; col < column && i < text.size(); ++col) {
    ++i;
    while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  }
  return std::min(i, text.size());
}

std::pair<int, int> position_of(std::string_view text, size_t offset) {
  int line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line, column = 1;
    } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      ++column;
    }
  }
  return {line, column};
}

/// One line, whatever toml++ quoted: control characters written as escapes.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Diagnostic syntax_error(std::string_view text, const std::string& file, int line, int column,
                        std::string_view description) {
  // toml++: "Error while parsing array: encountered end-of-file"; some have no "while parsing".
  std::string what, detail(description);
  constexpr std::string_view kPrefix = "Error while parsing ";
  if (description.substr(0, kPrefix.size()) == kPrefix) {
    std::string_view rest = description.substr(kPrefix.size());
    size_t colon = rest.find(": ");
    if (colon != std::string_view::npos) {
      what = rest.substr(0, colon);
      detail = rest.substr(colon + 2);
    }
  }
  if (!detail.empty() && detail[0] >= 'A' && detail[0] <= 'Z' && (detail.size() < 2 || detail[1] < 'A' || detail[1] > 'Z'))
    detail[0] = static_cast<char>(detail[0] - 'A' + 'a');
  detail = printable(detail);

  size_t at = offset_of(text, line, column);
  Context ctx = scan(text, at);
  Diagnostic d{file, line, column, ctx.key, "syntax error", ""};
  if (ctx.open) {
    const Opened& o = *ctx.open;
    auto [open_line, open_column] = position_of(text, o.at);
    bool at_line_end = at >= text.size() || text[at] == '\n' || text[at] == '\r';
    bool single_line = o.kind == Kind::BasicString || o.kind == Kind::LiteralString || o.kind == Kind::Header ||
                       o.kind == Kind::ArrayHeader;
    if (detail == "encountered end-of-file" || (single_line && at_line_end)) {
      // Where it was opened is where the fix goes; the end of the file says little.
      d.line = open_line;
      d.column = open_column;
      d.message += ": this " + std::string(kind_name(o.kind)) +
                   (detail == "encountered end-of-file" && !single_line ? " is never closed (the file ends first)"
                                                                        : " is not closed on its line");
      const std::string close = closer(o.kind);
      d.hint = "add the missing " + (close[0] == '\'' ? "\"" + close + "\"" : "'" + close + "'");
      if (o.kind == Kind::BasicString) d.hint += " (a string over several lines is written \"\"\"...\"\"\")";
      if (o.kind == Kind::LiteralString) d.hint += " (a string over several lines is written '''...''')";
      return d;
    }
    if ((o.kind == Kind::Array || o.kind == Kind::InlineTable) && open_line < line)
      d.hint = "is the '" + std::string(closer(o.kind)) + "' of the " + kind_name(o.kind) + " opened at line " +
               std::to_string(open_line) + " missing?";
  }
  if (!what.empty()) d.message += " in " + what;
  d.message += ": " + detail;
  if (d.hint.empty()) {
    if (detail.rfind("cannot redefine existing", 0) == 0) d.hint = "a key or table may be defined only once";
    else if (detail == "could not determine value type") d.hint = "write text in quotes, e.g. key = \"value\"";
    else if (detail == "encountered end-of-file" && !ctx.key.empty()) d.hint = "the value is missing";
  }
  return d;
}

}  // namespace corral::conf
