#include "service/hash_lane.h"

#include <system_error>
#include <utility>

namespace coffre::service::internal {

HashLane::HashLane(std::function<void(ByteView)> work) : work_(std::move(work)) {}

HashLane::~HashLane() {
  if (!thread_.joinable()) {
    return;
  }
  {
    std::lock_guard lock(mu_);
    stop_ = true;  // Run() finishes the buffer in flight before it looks at stop_
  }
  cv_.notify_all();
  thread_.join();
}

void HashLane::Submit(ByteView data) {
  if (!thread_.joinable() && !inline_) {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {
      inline_ = true;  // no thread to be had (EAGAIN): hash in series, as without a lane
    }
  }
  if (inline_) {
    work_(data);
    return;
  }
  {
    std::lock_guard lock(mu_);
    job_ = data;
    busy_ = true;
  }
  cv_.notify_all();
}

void HashLane::Wait() {
  if (!thread_.joinable()) {
    return;  // never started, or inline: nothing can be in flight
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !busy_; });
  if (error_) {
    std::rethrow_exception(std::exchange(error_, nullptr));
  }
}

void HashLane::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return busy_ || stop_; });
    if (!busy_) {
      return;  // stop_ and nothing in flight
    }
    const ByteView data = job_;
    lock.unlock();
    std::exception_ptr error;
    try {
      work_(data);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace coffre::service::internal
