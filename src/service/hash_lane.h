#pragma once

// A hashing lane: one worker thread that runs a fixed piece of work (hashing a buffer) beside the
// caller, one buffer at a time. Private to the service module (docs/PERFORMANCE.md, "MD5 beside
// encryption").
//
// The object writer hands it each full batch of plaintext segments, then seals and appends the
// same buffer on its own thread while the lane hashes it; it calls Wait() before it touches that
// buffer again. At most one buffer is in flight, and buffers are hashed in the order they are submitted.
//
// The thread starts on the first Submit() (a lane that is never used costs nothing), and if it
// cannot be started the work runs on the caller's thread instead. Not thread-safe: Submit() and
// Wait() are called by one owner at a time (the writer's calls are sequential, even when they come
// from different pool threads); the lane's mutex orders the work with the owner's calls.

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "coffre/common/bytes.h"

namespace coffre::service::internal {

class HashLane {
 public:
  // `work` runs once per submitted buffer, on the lane's thread (or the caller's).
  explicit HashLane(std::function<void(ByteView)> work);
  // Waits for the buffer in flight, if any, then stops and joins the thread.
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
  void Run();

  std::function<void(ByteView)> work_;
  std::mutex mu_;
  std::condition_variable cv_;  // signalled on every change of busy_ or stop_
  ByteView job_;                // guarded by mu_
  bool busy_ = false;           // guarded by mu_: job_ submitted and not yet done
  bool stop_ = false;           // guarded by mu_
  std::exception_ptr error_;    // guarded by mu_: what the last work threw
  std::thread thread_;          // started by the first Submit(); touched by the owner only
  bool inline_ = false;         // the thread could not be started: work runs in Submit()
};

}  // namespace coffre::service::internal
