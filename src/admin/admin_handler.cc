#include "coffre/admin/admin_handler.h"

#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

namespace coffre::admin {
namespace {

namespace bhttp = boost::beast::http;

struct Answer {
  bhttp::status status = bhttp::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

std::string_view PathOf(std::string_view target) {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

AdminHandler::AdminHandler(ops::Registry& metrics, boost::asio::thread_pool& pool,
                           std::vector<ReadinessCheck> checks)
    : metrics_(metrics), pool_(pool), checks_(std::move(checks)) {}

boost::asio::awaitable<void> AdminHandler::Handle(http::Exchange& exchange) {
  const auto& request = exchange.request();
  const std::string_view path = PathOf(request.target());
  const bool head = request.method() == bhttp::verb::head;
  Answer answer;

  if (request.method() != bhttp::verb::get && !head) {
    answer.status = bhttp::status::method_not_allowed;
    answer.body = "method not allowed\n";
  } else if (path == "/health/live") {
    answer.body = "live\n";
  } else if (path == "/health/ready") {
    answer.content_type = "application/json";
    if (draining_.load(std::memory_order_relaxed)) {
      answer.status = bhttp::status::service_unavailable;
      answer.body = R"({"status":"draining"})"
                    "\n";
    } else {
      answer = co_await http::RunBlocking(pool_, [this]() {
        Answer a;
        a.content_type = "application/json";
        nlohmann::json checks = nlohmann::json::object();
        bool ready = true;
        for (const ReadinessCheck& check : checks_) {
          Status st = check.run();
          if (st.ok()) {
            checks[check.name] = "ok";
          } else {
            ready = false;
            checks[check.name] = st.message();
          }
        }
        a.status = ready ? bhttp::status::ok : bhttp::status::service_unavailable;
        nlohmann::json doc = {{"status", ready ? "ready" : "not ready"}, {"checks", std::move(checks)}};
        a.body = doc.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace) + "\n";
        return a;
      });
    }
  } else if (path == "/metrics") {
    answer.content_type = "text/plain; version=0.0.4; charset=utf-8";
    answer.body = co_await http::RunBlocking(pool_, [this]() { return metrics_.Render(); });
  } else {
    answer.status = bhttp::status::not_found;
    answer.body = "not found\n";
  }

  bhttp::response<bhttp::string_body> response{answer.status, request.version()};
  response.set(bhttp::field::content_type, answer.content_type);
  response.set(bhttp::field::cache_control, "no-store");
  if (answer.status == bhttp::status::method_not_allowed) {
    response.set(bhttp::field::allow, "GET, HEAD");
  }
  // For HEAD the connection sends the header only, with the length a GET would have.
  response.body() = std::move(answer.body);
  co_await exchange.Send(std::move(response));
}

}  // namespace coffre::admin
