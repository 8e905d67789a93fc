#include "daemon.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "coffre/catalog/catalog.h"
#include "coffre/http/server.h"
#include "coffre/keystore/keystore.h"
#include "coffre/s3/gateway.h"
#include "coffre/service/object_service.h"
#include "coffre/storage/blob_store.h"
#include "stores.h"

namespace coffre::server {
namespace {

namespace asio = boost::asio;

// Creates the development tenant once and saves its credentials beside the data (mode 0600).
Status EnsureDevTenant(keystore::Keystore& keys, const Config& config, const std::string& endpoint) {
  const std::string path = config.data_dir + "/dev-credentials.json";
  std::ifstream existing(path);
  nlohmann::json creds;
  if (existing) {
    creds = nlohmann::json::parse(existing, nullptr, false);
    if (creds.is_discarded() || !creds.contains("access_key_id")) {
      return Status::Corruption(path + " is not valid; remove it to create new development credentials");
    }
  } else {
    auto tenant = keys.GetTenantByName("dev");
    if (!tenant.ok()) tenant = keys.CreateTenant("dev");
    if (!tenant.ok()) return tenant.status();
    auto key = keys.CreateAccessKey(tenant->id);
    if (!key.ok()) return key.status();
    creds = {{"tenant", "dev"},
             {"access_key_id", key->key.access_key_id},
             {"secret_access_key", key->secret_access_key}};
  }
  creds["endpoint"] = endpoint;
  const std::string tmp = path + ".tmp";
  {
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return Status::FromErrno(errno, "write " + tmp);
    ::chmod(tmp.c_str(), 0600);
    std::string text = creds.dump(2) + "\n";
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + path);
  std::cout << "\nDevelopment tenant 'dev' (credentials saved in " << path << "):\n"
            << "  export AWS_ACCESS_KEY_ID=" << creds["access_key_id"].get<std::string>() << "\n"
            << "  export AWS_SECRET_ACCESS_KEY=" << creds["secret_access_key"].get<std::string>() << "\n"
            << "  export AWS_DEFAULT_REGION=" << config.region << "\n"
            << "  aws --endpoint-url " << endpoint << " s3 mb s3://my-bucket\n"
            << "  aws --endpoint-url " << endpoint << " s3 ls\n"
            << std::endl;
  return Status::Ok();
}

}  // namespace

int RunDaemon(const Config& config) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("coffre"));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Keys live in this process's memory: keep them out of core dumps and ptrace.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

  std::string host;
  uint16_t port = 0;
  if (Status st = ParseListen(config.listen, &host, &port); !st.ok()) {
    spdlog::critical("{}", st.message());
    return 1;
  }
  auto stores = OpenStores(config, /*for_daemon=*/true);
  if (!stores.ok()) {
    spdlog::critical("cannot start: {}", stores.status().ToString());
    return 2;
  }
  Stores& s = *stores;
  service::ObjectService service(*s.catalog, *s.keystore, *s.blobs);
  if (auto r = service.Recover(); !r.ok()) {
    spdlog::critical("start-up recovery failed: {}", r.error().message);
    return 2;
  }

  // Declaration order matters: the io_context is destroyed before the gateway, because
  // coroutine frames still queued on it refer to the gateway.
  asio::thread_pool pool(config.worker_threads);
  keystore::Keystore& keys = *s.keystore;
  s3::CredentialLookup lookup = [&keys](std::string_view access_key_id) -> Expected<s3::Credential, s3::Error> {
    auto r = keys.ResolveAccessKey(std::string(access_key_id));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return s3::Error(s3::ErrorCode::kInvalidAccessKeyId);
      if (r.status().code() == StatusCode::kPermissionDenied) return s3::Error(s3::ErrorCode::kAccessDenied);
      spdlog::error("access key lookup failed: {}", r.status().ToString());
      return s3::Error(s3::ErrorCode::kInternalError);
    }
    return s3::Credential{r->key.tenant_id, std::move(r->secret)};
  };
  s3::GatewayOptions gopts;
  gopts.base_domain = config.base_domain;
  gopts.region = config.region;
  s3::Gateway gateway(service, lookup, pool, gopts);
  asio::io_context io(static_cast<int>(config.io_threads));

  http::ServerOptions sopts;
  sopts.listen_host = host;
  sopts.listen_port = port;
  sopts.max_connections = config.max_connections;
  sopts.max_header_bytes = config.max_header_bytes;
  sopts.idle_timeout = std::chrono::seconds(config.idle_timeout_seconds);
  sopts.read_timeout = std::chrono::seconds(config.read_timeout_seconds);
  http::Server server(io, gateway, sopts);
  std::string error;
  auto endpoint = server.Start(&error);
  if (!endpoint) {
    spdlog::critical("cannot listen on {}: {}", config.listen, error);
    return 2;
  }
  const std::string bound = endpoint->address().to_string() + ":" + std::to_string(endpoint->port());
  std::cout << "listening on " << bound << std::endl;
  spdlog::info("coffre listening on {} (data in {})", bound, config.data_dir);
  if (config.create_dev_tenant) {
    if (Status st = EnsureDevTenant(keys, config, "http://" + bound); !st.ok()) {
      spdlog::critical("cannot create the development tenant: {}", st.ToString());
      return 2;
    }
  }

  // Unreachable blobs are removed in the background, after their grace period.
  asio::steady_timer gc_timer(io);
  std::function<void()> schedule_gc = [&] {
    gc_timer.expires_after(std::chrono::seconds(10));
    gc_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      asio::post(pool, [&] {
        if (auto r = service.CollectGarbage(); !r.ok()) spdlog::warn("garbage collection: {}", r.error().message);
      });
      schedule_gc();
    });
  };
  schedule_gc();

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer drain_deadline(io);
  asio::steady_timer drain_poll(io);
  // Once no connection is left, stop at once rather than wait for the deadline.
  std::function<void()> poll_drained = [&] {
    if (server.open_connections() == 0) {
      io.stop();
      return;
    }
    drain_poll.expires_after(std::chrono::milliseconds(50));
    drain_poll.async_wait([&](boost::system::error_code ec) {
      if (!ec) poll_drained();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: draining connections", signo);
    server.Stop();
    gc_timer.cancel();
    drain_deadline.expires_after(std::chrono::seconds(10));
    drain_deadline.async_wait([&](boost::system::error_code wait_ec) {
      if (!wait_ec) io.stop();
    });
    poll_drained();
  });

  std::vector<std::thread> threads;
  for (uint32_t i = 1; i < config.io_threads; ++i) threads.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  pool.join();
  spdlog::info("coffre stopped");
  return 0;
}

}  // namespace coffre::server
