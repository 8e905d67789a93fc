#include "service/hash_lane.h"

#include <algorithm>
#include <system_error>
#include <utility>

namespace coffre::service::internal {

HashPool::HashPool(unsigned threads) {
  for (unsigned i = 0; i < threads; ++i) {
    try {
      threads_.emplace_back([this] { Run(); });
    } catch (const std::system_error&) {
      break;  // no more threads to be had (EAGAIN): fewer workers, or none (work runs inline)
    }
  }
}

HashPool::~HashPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    t.join();
  }
}

void HashPool::Post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void HashPool::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) {
      return;  // stop_ and nothing queued
    }
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();  // never throws: HashLane's jobs catch what the work throws
    lock.lock();
  }
}

HashPool& SharedHashPool() {
  static HashPool pool(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  return pool;
}

HashLane::HashLane(std::function<void(ByteView)> work, HashPool& pool)
    : state_(std::make_shared<State>()), pool_(pool) {
  state_->work = std::move(work);
}

HashLane::~HashLane() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [this] { return !state_->busy; });
}

void HashLane::Submit(ByteView data) {
  if (!pool_.has_threads()) {
    state_->work(data);
    return;
  }
  {
    std::lock_guard lock(state_->mu);
    state_->busy = true;
  }
  pool_.Post([state = state_, data] {
    std::exception_ptr error;
    try {
      state->work(data);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard lock(state->mu);
    state->error = error;
    state->busy = false;
    state->cv.notify_all();
  });
}

void HashLane::Wait() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [this] { return !state_->busy; });
  if (state_->error) {
    std::rethrow_exception(std::exchange(state_->error, nullptr));
  }
}

}  // namespace coffre::service::internal
