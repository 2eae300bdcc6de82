#include "common/quote.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cwchar>
#include <cwctype>

namespace daxfs::tools {
namespace {

// Length of the printable character at the start of `s` in the current
// locale (multibyte UTF-8 included), or 0 when it is not printable.
size_t PrintableAt(std::string_view s) {
  const unsigned char c = static_cast<unsigned char>(s[0]);
  if (c < 0x80) return (c >= 0x20 && c < 0x7f) ? 1 : 0;
  std::mbstate_t state{};
  wchar_t wc;
  const size_t n = std::mbrtowc(&wc, s.data(), s.size(), &state);
  if (n == static_cast<size_t>(-1) || n == static_cast<size_t>(-2) || n == 0) return 0;
  return std::iswprint(static_cast<wint_t>(wc)) ? n : 0;
}

void AppendCEscape(unsigned char c, std::string* out) {
  switch (c) {
    case '\a': *out += "\\a"; return;
    case '\b': *out += "\\b"; return;
    case '\t': *out += "\\t"; return;
    case '\n': *out += "\\n"; return;
    case '\v': *out += "\\v"; return;
    case '\f': *out += "\\f"; return;
    case '\r': *out += "\\r"; return;
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      *out += buf;
    }
  }
}

// Characters a POSIX shell takes literally outside quotes.
bool ShellSafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("%+,-./:=@_", c) != nullptr;
}

std::string ShellEscape(std::string_view name) {
  if (name.empty()) return "''";
  bool plain = true;
  for (size_t i = 0; i < name.size();) {
    const size_t n = PrintableAt(name.substr(i));
    if (n == 0 || (n == 1 && !ShellSafe(name[i]))) { plain = false; break; }
    i += n;
  }
  if (plain) return std::string(name);
  // Printable runs in '...', a quote as \', the rest in $'...' (bash, zsh,
  // ksh and POSIX 2024 sh read all three).
  std::string out;
  enum { kNone, kQuoted, kDollar } open = kNone;
  auto enter = [&](decltype(open) want) {
    if (open == want) return;
    if (open != kNone) out += '\'';
    if (want == kQuoted) out += '\'';
    if (want == kDollar) out += "$'";
    open = want;
  };
  for (size_t i = 0; i < name.size();) {
    const size_t n = PrintableAt(name.substr(i));
    if (n > 0 && name[i] == '\'') {
      if (open != kNone) out += '\'';
      open = kNone;
      out += "\\'";
    } else if (n > 0) {
      enter(kQuoted);
      out.append(name.substr(i, n));
    } else {
      enter(kDollar);
      AppendCEscape(static_cast<unsigned char>(name[i]), &out);
      i += 1;
      continue;
    }
    i += n;
  }
  if (open != kNone) out += '\'';
  return out;
}

std::string CEscape(std::string_view name, bool escape_blanks) {
  std::string out;
  for (size_t i = 0; i < name.size();) {
    const size_t n = PrintableAt(name.substr(i));
    if (n == 0) {
      AppendCEscape(static_cast<unsigned char>(name[i]), &out);
      i += 1;
      continue;
    }
    if (escape_blanks && n == 1 && (name[i] == '\\' || name[i] == ' ')) out += '\\';
    out.append(name.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace

Quoting DefaultQuoting(int fd) { return isatty(fd) ? Quoting::kShellEscape : Quoting::kLiteral; }

bool ParseQuoting(std::string_view word, Quoting* out) {
  if (word == "literal") *out = Quoting::kLiteral;
  else if (word == "shell-escape") *out = Quoting::kShellEscape;
  else if (word == "escape") *out = Quoting::kEscape;
  else return false;
  return true;
}

std::string QuoteName(std::string_view name, Quoting quoting) {
  switch (quoting) {
    case Quoting::kLiteral: return std::string(name);
    case Quoting::kShellEscape: return ShellEscape(name);
    case Quoting::kEscape: return CEscape(name, true);
  }
  return std::string(name);
}

std::string EscapeControls(std::string_view text) { return CEscape(text, false); }

}  // namespace daxfs::tools
