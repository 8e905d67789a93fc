#include "coffre/admin/admin_handler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <memory>
#include <string>
#include <vector>

#include "http/raw_client.h"
#include "support/loopback_server.h"

namespace coffre::admin {
namespace {

using http::testing::RawClient;
using http::testing::RawResponse;

class AdminHandlerTest : public ::testing::Test {
 protected:
  void Start(std::vector<ReadinessCheck> checks) {
    handler_ = std::make_unique<AdminHandler>(registry_, pool_, std::move(checks));
    ASSERT_TRUE(server_.Start(*handler_));
  }

  void TearDown() override {
    server_.Stop();
    pool_.join();
  }

  RawResponse Get(const std::string& target, const std::string& method = "GET") {
    RawClient client(server_.port());
    EXPECT_TRUE(client.connected());
    EXPECT_TRUE(client.Send(method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    auto response = client.ReadResponse(method == "HEAD");
    EXPECT_TRUE(response.has_value());
    return response.value_or(RawResponse{});
  }

  ops::Registry registry_;
  boost::asio::thread_pool pool_{2};
  std::unique_ptr<AdminHandler> handler_;
  test_support::LoopbackServer server_;
};

TEST_F(AdminHandlerTest, LiveAnswers200) {
  Start({});
  auto r = Get("/health/live");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "live\n");
  EXPECT_EQ(r.Header("Cache-Control"), "no-store");
}

TEST_F(AdminHandlerTest, ReadyWhenEveryCheckPasses) {
  std::atomic<int> runs{0};
  Start({{"keystore",
          [&runs] {
            ++runs;
            return Status::Ok();
          }},
         {"catalog", [&runs] {
            ++runs;
            return Status::Ok();
          }}});
  auto r = Get("/health/ready");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"checks":{"catalog":"ok","keystore":"ok"},"status":"ready"})"
                    "\n");
  EXPECT_EQ(runs.load(), 2);
}

TEST_F(AdminHandlerTest, NotReadyNamesTheFailingCheck) {
  Start({{"keystore", [] { return Status::Ok(); }},
         {"data_dir", [] { return Status::NoSpace("only 10 bytes free in /data"); }}});
  auto r = Get("/health/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find(R"("data_dir":"only 10 bytes free in /data")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("status":"not ready")"), std::string::npos) << r.body;
}

TEST_F(AdminHandlerTest, DrainingIsNotReady) {
  Start({{"keystore", [] { return Status::Ok(); }}});
  handler_->SetDraining();
  auto r = Get("/health/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("draining"), std::string::npos);
  EXPECT_EQ(Get("/health/live").status, 200);
}

TEST_F(AdminHandlerTest, MetricsInPrometheusTextFormat) {
  registry_.GetCounter("coffre_test_total", "A test counter.").Add(7);
  Start({});
  auto r = Get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r.body.find("# TYPE coffre_test_total counter\ncoffre_test_total 7\n"), std::string::npos) << r.body;
}

TEST_F(AdminHandlerTest, QueryStringIsIgnoredForRouting) {
  Start({});
  EXPECT_EQ(Get("/health/live?verbose=1").status, 200);
}

TEST_F(AdminHandlerTest, UnknownPathIs404AndOtherMethodsAre405) {
  Start({});
  EXPECT_EQ(Get("/nope").status, 404);
  EXPECT_EQ(Get("/nope").Header("Content-Type"), "application/json");
  EXPECT_EQ(Get("/nope", "POST").status, 404);
  EXPECT_EQ(Get("/health/live/../../etc/passwd").status, 404);
  auto r = Get("/metrics", "DELETE");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Header("Allow"), "GET, HEAD");
}

TEST_F(AdminHandlerTest, HeadHasLengthButNoBody) {
  Start({});
  auto r = Get("/health/live", "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("Content-Length"), "5");
  EXPECT_TRUE(r.body.empty());
}

}  // namespace
}  // namespace coffre::admin
