#include "server/operations.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "coffre/ops/metrics.h"
#include "coffre/service/scrub.h"
#include "support/status_matchers.h"

namespace coffre::server {
namespace {

// Tells apart a record made at once (Record) from one started (Start), as the audit log does.
class StartAwareRecorder final : public audit::Recorder {
 public:
  Status Record(const audit::Event& event) override {
    calls.push_back("record " + event.request.request_id);
    return Status::Ok();
  }
  std::unique_ptr<audit::PendingRecord> Start(const audit::Event& event) override {
    class Durable final : public audit::PendingRecord {
      Status Wait() override { return Status::Ok(); }
    };
    calls.push_back("start " + event.request.request_id);
    return std::make_unique<Durable>();
  }
  std::vector<std::string> calls;
};

audit::Event Ev(const std::string& request_id, audit::Outcome outcome, const std::string& action) {
  audit::Event e;
  e.operation = audit::Operation::kDataKeyUnwrap;
  e.outcome = outcome;
  e.request.request_id = request_id;
  e.request.action = action;
  return e;
}

TEST(IntegrityMetricsRecorderTest, ForwardsStartAndRecordAsTheyCameAndCountsIntegrityFailures) {
  StartAwareRecorder inner;
  ops::Registry registry;
  IntegrityMetricsRecorder recorder(inner, registry);
  audit::Recorder& as_recorder = recorder;

  auto pending = as_recorder.Start(Ev("get", audit::Outcome::kSuccess, "GetObject"));
  ASSERT_NE(pending, nullptr);
  EXPECT_OK(pending->Wait());
  EXPECT_OK(as_recorder.Record(Ev("damaged", audit::Outcome::kIntegrityFailure, "GetObject")));
  (void)as_recorder.Start(Ev("scrubbed", audit::Outcome::kIntegrityFailure, std::string(service::kScrubAction)));

  // The inner log's Start, not the base class's (which would Record at once and block the caller).
  EXPECT_EQ(inner.calls, (std::vector<std::string>{"start get", "record damaged", "start scrubbed"}));
  const std::string text = registry.Render();
  EXPECT_NE(text.find("coffre_integrity_failures_total{source=\"read\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("coffre_integrity_failures_total{source=\"scrub\"} 1"), std::string::npos) << text;
}

}  // namespace
}  // namespace coffre::server
