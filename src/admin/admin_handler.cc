#include "coffre/admin/admin_handler.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/http/uri.h"

namespace coffre::admin {
namespace {

namespace bhttp = boost::beast::http;

struct Answer {
  bhttp::status status = bhttp::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

}  // namespace

AdminHandler::AdminHandler(ops::Registry& metrics, boost::asio::thread_pool& pool, std::vector<ReadinessCheck> checks,
                           AdminApi* api)
    : metrics_(metrics), pool_(pool), checks_(std::move(checks)), api_(api) {}

boost::asio::awaitable<void> AdminHandler::HandleApi(http::Exchange& exchange) {
  const auto& request = exchange.request();
  ApiRequest api_request;
  api_request.method = std::string(request.method_string());
  api_request.target = std::string(request.target());
  api_request.client_address = exchange.remote_address();
  api_request.request_id = RandomId(8);
  if (auto it = request.find(bhttp::field::authorization); it != request.end()) {
    api_request.authorization = std::string(it->value());
  }
  ApiResponse answer;
  bool body_ok = true;
  bool body_malformed = false;
  // A large body is refused before it is read (no 100-continue is sent for it).
  if (exchange.content_length() && *exchange.content_length() > AdminApi::kMaxBodyBytes) {
    body_ok = false;
  } else {
    std::vector<uint8_t> buffer(16 * 1024);
    while (true) {
      auto [n, error] = co_await exchange.ReadBody(buffer);
      if (error == http::BodyError::kTooLarge) {
        body_ok = false;
        break;
      }
      if (error == http::BodyError::kMalformed) {
        body_malformed = true;
        break;
      }
      if (error != http::BodyError::kNone) {
        co_return;  // timed out or gone: the connection is being closed, nobody to answer
      }
      if (n == 0) {
        break;
      }
      if (api_request.body.size() + n > AdminApi::kMaxBodyBytes) {
        body_ok = false;
        break;
      }
      api_request.body.append(reinterpret_cast<const char*>(buffer.data()), n);
    }
  }
  if (body_malformed) {
    answer.status = 400;
    answer.body = R"({"error":{"code":"malformed_body","message":"the request body's framing is invalid"}})"
                  "\n";
  } else if (!body_ok) {
    answer.status = 413;
    answer.body = R"({"error":{"code":"body_too_large","message":"request bodies are limited to )" +
                  std::to_string(AdminApi::kMaxBodyBytes) +
                  R"( bytes"}})"
                  "\n";
  } else {
    answer = co_await http::RunBlocking(pool_, [this, &api_request]() { return api_->Handle(api_request); });
  }
  // The path only: the query names a tenant and times, the Authorization header is never logged.
  spdlog::info("admin API {} {} -> {} (credential {}, request {}, from {})", api_request.method,
               http::SplitTarget(api_request.target).path, answer.status,
               answer.credential.empty() ? "-" : answer.credential, api_request.request_id, api_request.client_address);

  bhttp::response<bhttp::string_body> response{static_cast<bhttp::status>(answer.status), request.version()};
  response.set(bhttp::field::content_type, answer.content_type);
  response.set(bhttp::field::cache_control, "no-store");
  response.set("X-Request-Id", api_request.request_id);
  if (!answer.allow.empty()) {
    response.set(bhttp::field::allow, answer.allow);
  }
  if (answer.status == 401) {
    response.set(bhttp::field::www_authenticate, R"(Bearer realm="coffre-admin")");
  }
  if (!answer.content_disposition.empty()) {
    response.set(bhttp::field::content_disposition, answer.content_disposition);
  }
  response.body() = std::move(answer.body);
  co_await exchange.Send(std::move(response));
}

boost::asio::awaitable<void> AdminHandler::Handle(http::Exchange& exchange) {
  const auto& request = exchange.request();
  const std::string_view path = http::SplitTarget(request.target()).path;
  if (api_ != nullptr && AdminApi::Handles(path)) {
    co_await HandleApi(exchange);
    co_return;
  }
  const bool head = request.method() == bhttp::verb::head;
  Answer answer;

  // Errors are JSON, as the authenticated endpoints' (admin_api.h), so clients parse one shape.
  if (request.method() != bhttp::verb::get && !head &&
      (path == "/health/live" || path == "/health/ready" || path == "/metrics")) {
    answer.status = bhttp::status::method_not_allowed;
    answer.content_type = "application/json";
    answer.body = R"({"error":{"code":"method_not_allowed","message":"this path accepts GET, HEAD"}})"
                  "\n";
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
    answer.content_type = "application/json";
    answer.body = R"({"error":{"code":"not_found","message":"no such path"}})"
                  "\n";
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
