// Cleanup when SIGINT, SIGTERM or SIGHUP ends the process while an output is
// half-written.
//
// The handlers are installed on first use, only for those signals whose
// disposition is still the default (a program that handles or ignores them
// keeps its own behaviour), and they end the process by the same signal once
// the cleanup is done, so callers see the usual exit status.
#pragma once

#include <string>

namespace daxfs::output {

// While alive, a terminating signal unlinks `name` in directory `dir_fd`
// (unlinkat is async-signal-safe; no path is resolved in the handler).
class TempName {
 public:
  TempName(int dir_fd, const std::string& name);
  ~TempName();  // unregisters; does not unlink
  TempName(const TempName&) = delete;
  TempName& operator=(const TempName&) = delete;

 private:
  int slot_ = -1;
};

// While alive, a terminating signal does not end the process at once:
// Requested() turns true so an operation that creates many names can stop
// and undo them, and the destructor then ends the process by that signal.
class DeferInterrupts {
 public:
  DeferInterrupts();
  ~DeferInterrupts();
  DeferInterrupts(const DeferInterrupts&) = delete;
  DeferInterrupts& operator=(const DeferInterrupts&) = delete;
  static bool Requested();
};

}  // namespace daxfs::output
