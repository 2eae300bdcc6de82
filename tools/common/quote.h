// Showing names from images and sources without letting them drive the
// terminal: a name with a newline or an escape sequence is quoted as GNU ls
// quotes it.
#pragma once

#include <string>
#include <string_view>

namespace daxfs::tools {

enum class Quoting {
  kLiteral,      // bytes as they are (ls -N; ls's default when not a terminal)
  kShellEscape,  // 'a'$'\n''b': quoted only when needed (ls's default on a terminal)
  kEscape,       // a\nb, a\ b: C-style backslash escapes (ls -b)
};

// GNU ls's default for output to `fd`: shell-escape on a terminal, else literal.
Quoting DefaultQuoting(int fd);
// Parses "literal", "shell-escape" or "escape"; false if none of them.
bool ParseQuoting(std::string_view word, Quoting* out);
std::string QuoteName(std::string_view name, Quoting quoting);
// For diagnostics, whatever the output: every character that is not
// printable in the current locale becomes a C-style escape (\n, \033, \377);
// the rest of the text is unchanged.
std::string EscapeControls(std::string_view text);

}  // namespace daxfs::tools
