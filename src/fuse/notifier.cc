#include "fuse/notifier.h"

#include <pthread.h>

namespace daxfs::fuse {

void Notifier::Start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  stop_ = false;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Notifier::Post(std::function<void()> notify, std::function<void()> reply) {
  {
    std::lock_guard lock(mu_);
    if (running_ && !stop_) {
      jobs_.push_back({std::move(notify), std::move(reply)});
      cv_.notify_one();
      return;
    }
  }
  if (notify) notify();
  if (reply) reply();
}

void Notifier::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  std::lock_guard lock(mu_);
  running_ = false;
}

void Notifier::Run() {
  pthread_setname_np(pthread_self(), name_);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything posted has run
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    const bool notify = !stop_;
    lock.unlock();
    if (notify && job.notify) job.notify();
    if (job.reply) job.reply();
    lock.lock();
  }
}

}  // namespace daxfs::fuse
