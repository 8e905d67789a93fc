#pragma once

// An audit::Recorder for unit tests: keeps every event, and refuses every Record() while
// set_failing(true) (an unwritable audit log), counting the refusals.

#include <mutex>
#include <vector>

#include "coffre/audit/event.h"

namespace coffre::test_support {

class FakeRecorder final : public audit::Recorder {
 public:
  Status Record(const audit::Event& event) override {
    std::lock_guard lock(mu_);
    if (failing_) {
      ++refused_;
      return Status::Unavailable("injected: audit disk full");
    }
    events_.push_back(event);
    return Status::Ok();
  }
  void set_failing(bool failing) {
    std::lock_guard lock(mu_);
    failing_ = failing;
  }
  std::vector<audit::Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  int refused() {
    std::lock_guard lock(mu_);
    return refused_;
  }
  void clear() {
    std::lock_guard lock(mu_);
    events_.clear();
  }

 private:
  std::mutex mu_;
  bool failing_ = false;
  int refused_ = 0;
  std::vector<audit::Event> events_;
};

}  // namespace coffre::test_support
