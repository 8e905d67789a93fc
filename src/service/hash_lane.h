#pragma once

// A hashing lane: runs a fixed piece of work (hashing a buffer) beside the caller, one buffer at
// a time, on a small pool of threads shared by every lane of the process. Private to the service
// module (docs/performance-history.md, "MD5 beside encryption").
//
// The object writer hands it each full batch of plaintext segments, then seals and appends the
// same buffer on its own thread while the lane hashes it; it calls Wait() before it touches that
// buffer again. At most one buffer per lane is in flight, and a lane's buffers are hashed in the
// order they are submitted.
//
// The pool's threads are made once (SharedHashPool), so the process's thread count does not
// follow the number of uploads in progress; with more lanes busy than threads, their buffers
// queue. If the pool has no thread (none could be started), the work runs on the caller's thread.
// Not thread-safe: Submit() and Wait() are called by one owner at a time (the writer's calls are
// sequential, even when they come from different pool threads).

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "coffre/common/bytes.h"

namespace coffre::service::internal {

// A fixed set of threads running posted jobs in order of posting.
class HashPool {
 public:
  explicit HashPool(unsigned threads);
  ~HashPool();  // runs what is queued, then joins
  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  // False when no thread could be started: the caller must do the work itself.
  bool has_threads() const { return !threads_.empty(); }
  void Post(std::function<void()> job);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::vector<std::thread> threads_;
};

// The process's pool: one thread per CPU, at most 4 (hashing is the only work it does), made on
// the first call. The daemon makes it at start (ObjectService::StartHashingThreads), so its
// threads exist from then on; elsewhere the first upload larger than one batch makes it.
HashPool& SharedHashPool();

class HashLane {
 public:
  // `work` runs once per submitted buffer, on a pool thread (or the caller's).
  explicit HashLane(std::function<void(ByteView)> work, HashPool& pool = SharedHashPool());
  // Waits for the buffer in flight, if any (its error, if any, is dropped).
  ~HashLane();
  HashLane(const HashLane&) = delete;
  HashLane& operator=(const HashLane&) = delete;

  // Starts `work(data)`. The lane must be idle (nothing submitted since the last Wait()); `data`
  // must stay alive and unmodified until Wait() returns.
  void Submit(ByteView data);

  // Returns once the submitted work, if any, is done; afterwards the caller may reuse the buffer
  // and read what the work wrote. Rethrows an exception the work threw.
  void Wait();

 private:
  // Shared with the job in flight, so that the job's last touch (the notification) never meets a
  // destroyed lane.
  struct State {
    std::function<void(ByteView)> work;
    std::mutex mu;
    std::condition_variable cv;
    bool busy = false;         // guarded by mu: a buffer submitted and not yet done
    std::exception_ptr error;  // guarded by mu: what the last work threw
  };
  std::shared_ptr<State> state_;
  HashPool& pool_;
};

}  // namespace coffre::service::internal
