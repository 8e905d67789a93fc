#pragma once

// A thread of the daemon's own background work (the scrub, the lifecycle pass): started once,
// asked to stop from any thread (a signal handler's strand), and waiting only through Pause, so
// that a stop request ends any wait at once.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace coffre::server {

class BackgroundThread {
 public:
  BackgroundThread() = default;
  ~BackgroundThread() { Stop(); }
  BackgroundThread(const BackgroundThread&) = delete;
  BackgroundThread& operator=(const BackgroundThread&) = delete;

  bool started() const { return thread_.joinable(); }
  // Runs `body` on the thread; does nothing if it was started already.
  void Start(std::function<void()> body) {
    if (thread_.joinable()) return;
    thread_ = std::thread(std::move(body));
  }
  // Asks the body to stop (its next Pause returns false) without waiting.
  void RequestStop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
  }
  // RequestStop(), then waits for the thread.
  void Stop() {
    RequestStop();
    if (thread_.joinable()) thread_.join();
  }
  // For the body: waits up to `d`; false once stop was requested.
  bool Pause(std::chrono::nanoseconds d) {
    std::unique_lock lock(mu_);
    if (d.count() > 0) cv_.wait_for(lock, d, [this] { return stop_; });
    return !stop_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace coffre::server
