#include "fuse/notifier.h"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "fuse/session.h"

namespace daxfs::fuse {

struct Notifier::State {
  struct Job {
    std::function<void()> notify;
    std::function<void()> reply;
  };
  std::mutex mu;
  std::condition_variable cv;       // jobs or stop
  std::condition_variable done_cv;  // the thread ended
  std::deque<Job> jobs;
  bool stop = false;
  bool done = false;
  bool abandoned = false;  // Stop gave up waiting: run nothing more
};

void Notifier::Start() {
  if (state_) return;
  state_ = std::make_shared<State>();
  thread_ = std::thread(Run, state_, name_);
}

void Notifier::Post(std::function<void()> notify, std::function<void()> reply) {
  if (state_) {
    std::lock_guard lock(state_->mu);
    if (!state_->stop) {
      state_->jobs.push_back({std::move(notify), std::move(reply)});
      state_->cv.notify_one();
      return;
    }
  }
  if (notify) notify();
  if (reply) reply();
}

void Notifier::Stop(std::chrono::milliseconds patience) {
  if (!state_) return;
  std::unique_lock lock(state_->mu);
  state_->stop = true;
  state_->cv.notify_one();
  if (state_->done_cv.wait_for(lock, patience, [&] { return state_->done; })) {
    lock.unlock();
    thread_.join();
  } else {
    state_->abandoned = true;
    lock.unlock();
    thread_.detach();
    LogProblem(std::string(name_) + ": a kernel notification did not finish in time at unmount; left behind");
  }
  state_.reset();
}

void Notifier::Run(std::shared_ptr<State> state, const char* name) {
  pthread_setname_np(pthread_self(), name);
  std::unique_lock lock(state->mu);
  for (;;) {
    state->cv.wait(lock, [&] { return state->stop || !state->jobs.empty(); });
    if (state->abandoned) return;
    if (state->jobs.empty()) break;  // stopping, and everything posted has run
    State::Job job = std::move(state->jobs.front());
    state->jobs.pop_front();
    const bool notify = !state->stop;
    lock.unlock();
    if (notify && job.notify) job.notify();
    lock.lock();
    if (state->abandoned) return;
    lock.unlock();
    if (job.reply) job.reply();
    lock.lock();
  }
  state->done = true;
  state->done_cv.notify_all();
}

}  // namespace daxfs::fuse
