#pragma once

// The S3 protocol edge: routes each HTTP exchange to an operation, authenticates it, runs the
// operation against the object service and answers with S3's headers, XML and errors.
// Service errors become S3 errors here and nowhere else.

#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <string>

#include "coffre/http/server.h"
#include "coffre/s3/sigv4.h"
#include "coffre/service/object_service.h"

namespace coffre::s3 {

struct GatewayOptions {
  std::string base_domain = "localhost";  // virtual-hosted-style addressing: <bucket>.<base_domain>
  std::string region = "us-east-1";       // reported by GetBucketLocation; "" accepts any signed region
  AuthOptions auth;
  size_t max_xml_body = 2 * 1024 * 1024;  // request bodies parsed in memory (XML)
  uint64_t max_single_put = 5ull * 1024 * 1024 * 1024;  // S3's single PUT / part limit
  size_t max_user_metadata = 2 * 1024;    // S3's x-amz-meta-* limit
  size_t io_chunk = 256 * 1024;           // body bytes handled per step
};

class Gateway final : public http::Handler {
 public:
  Gateway(service::ObjectService& service, CredentialLookup lookup, boost::asio::thread_pool& pool,
          GatewayOptions options);
  boost::asio::awaitable<void> Handle(http::Exchange& exchange) override;

  service::ObjectService& service() { return service_; }
  boost::asio::thread_pool& pool() { return pool_; }
  const CredentialLookup& lookup() const { return lookup_; }
  const GatewayOptions& options() const { return options_; }

 private:
  service::ObjectService& service_;
  CredentialLookup lookup_;
  boost::asio::thread_pool& pool_;
  GatewayOptions options_;
};

}  // namespace coffre::s3
