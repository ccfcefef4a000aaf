// corral-conf-man: writes corral.toml(5) from a roff template and the config schema, so the
// man page's key reference and the loader share one source of truth (conf/schema.cc).
//
//   corral-conf-man TEMPLATE OUTPUT VERSION
//
// TEMPLATE is copied line by line; "@VERSION@" is replaced, and a line that is exactly
// "@KEYS@" becomes one .SS per section and one .TP per key (name, type, default, doc).
// Build-time tool only; not installed.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "conf/schema.h"

namespace {

using corral::conf::Section;

// Escapes text for roff: backslashes, minus signs and a leading control character.
std::string roff(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string section_heading(Section s) {
  std::string name(corral::conf::section_name(s));
  if (s == Section::Listener || s == Section::Route) return "[[" + name + "]]";
  if (s == Section::App) return "[app.NAME]";
  return "[" + name + "]";
}

std::string keys() {
  std::ostringstream out;
  const Section order[] = {Section::Supervisor, Section::Proxy, Section::Listener, Section::Route, Section::App};
  for (Section s : order) {
    out << ".SS \"" << section_heading(s) << "\"\n";
    for (auto& k : corral::conf::schema()) {
      if (k.section != s) continue;
      out << ".TP\n.B " << roff(k.name) << "\n";
      out << roff(k.doc) << (k.required ? " Required." : "") << "\n.br\n";
      out << "Type: " << roff(corral::conf::describe_type(k.type)) << ".";
      if (!k.default_value.empty()) out << " Default: \\fB" << roff(k.default_value) << "\\fR.";
      else if (!k.example.empty()) out << " Example: \\fB" << roff(k.example) << "\\fR.";
      out << "\n";
    }
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: corral-conf-man TEMPLATE OUTPUT VERSION\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) return std::fprintf(stderr, "corral-conf-man: cannot read %s\n", argv[1]), 1;
  std::ostringstream out;
  for (std::string line; std::getline(in, line);) {
    if (line == "@KEYS@") {
      out << keys();
      continue;
    }
    for (size_t p; (p = line.find("@VERSION@")) != std::string::npos;) line.replace(p, 9, argv[3]);
    out << line << "\n";
  }
  std::ofstream o(argv[2]);
  o << out.str();
  return o.good() ? 0 : 1;
}
