// Kernel notifications that may wait, sent off the threads that serve
// requests.
//
// FUSE_NOTIFY_INVAL_ENTRY takes the directory's lock in the kernel. A caller
// whose LOOKUP (or CREATE, UNLINK, ...) in that directory waits for our
// reply holds that lock, so the notification waits until some thread of
// ours answers that request. Sent from a request-serving thread, it can
// wait forever: when every worker sends one at once (commits of concurrent
// agents), no thread is left to answer the lookup they all wait for (seen
// in CI as mount.branch_agents stuck with all workers in
// fuse_reverse_inval_entry). A Notifier runs such work, and the reply that
// must follow it, on a thread of its own: workers hand it over and go back
// to serving.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

namespace daxfs::fuse {

class Notifier {
 public:
  explicit Notifier(const char* thread_name) : name_(thread_name) {}
  ~Notifier() { Stop(); }
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Start();
  // Runs `notify`, then `reply` (either may be empty), on the notifier's
  // thread, after the jobs posted before. Without a thread (not started,
  // or stopped) both run here and now.
  void Post(std::function<void()> notify, std::function<void()> reply);
  // Ends the thread. Jobs still queued get their replies but no longer
  // their notifications (the session is ending: nothing is served that
  // they could wait for, and the kernel's caches go with the mount). A
  // notification already waiting for a directory lock that no request
  // will release any more (the session stopped while a caller held it)
  // is given up on after `patience`: the thread is left behind, and
  // touches nothing of the session's when it wakes.
  void Stop(std::chrono::milliseconds patience = std::chrono::seconds(5));

 private:
  struct State;
  static void Run(std::shared_ptr<State> state, const char* name);

  const char* name_;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace daxfs::fuse
