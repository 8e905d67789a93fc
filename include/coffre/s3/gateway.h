#pragma once

// The S3 protocol edge: routes each HTTP exchange to an operation, authenticates it, runs the
// operation against the object service and answers with S3's headers, XML and errors.
// Service errors become S3 errors here and nowhere else.

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "coffre/common/slots.h"
#include "coffre/http/server.h"
#include "coffre/s3/sigv4.h"
#include "coffre/service/object_service.h"

namespace coffre::s3 {

// What one S3 request did, reported when its handling ends (metrics, access log). The views are
// valid only during the observer's call. Carries no secret: no header, signature or credential.
struct RequestRecord {
  std::string_view request_id;
  std::string_view method;
  std::string_view operation;  // OperationName(); "Unrouted" when refused before routing
  std::string_view bucket;
  std::string_view key;
  std::string_view tenant_id;   // empty when not authenticated
  int status = 0;               // 0: no response could be sent (the connection failed)
  uint64_t bytes_received = 0;  // request body bytes read off the wire
  uint64_t bytes_sent = 0;      // response body bytes written
  std::chrono::microseconds duration{0};
};
// Called on the request's network thread: must be cheap, thread-safe and must not throw.
using RequestObserver = std::function<void(const RequestRecord&)>;
// Decides, after authentication, whether the tenant may make one more request now (rate limits).
// false: the request is refused with SlowDown (503) before any work. Called on a worker thread
// (it may read the keystore); must be thread-safe and must not throw.
using AdmissionCheck = std::function<bool(std::string_view tenant_id)>;
// Decides, after admission, whether the tenant may have one more request body in flight: a token
// held until the request is over, or null to refuse it with SlowDown (503) before its body is
// read. Called on a worker thread only for requests with a body; thread-safe, must not throw.
using BodyAdmission = std::function<std::shared_ptr<void>(std::string_view tenant_id)>;

struct GatewayOptions {
  std::string base_domain = "localhost";  // virtual-hosted-style addressing: <bucket>.<base_domain>
  std::string region = "us-east-1";       // reported by GetBucketLocation; "" accepts any signed region
  AuthOptions auth;
  size_t max_xml_body = 2 * 1024 * 1024;                // request bodies parsed in memory (XML)
  uint64_t max_single_put = 5ull * 1024 * 1024 * 1024;  // S3's single PUT / part limit
  size_t max_user_metadata = 2 * 1024;                  // S3's x-amz-meta-* limit
  size_t io_chunk = 256 * 1024;                         // body bytes handled per step
  // Bytes of a PUT or part body larger than io_chunk read per step. A body in flight holds two
  // read buffers (one is read while the other is stored) and its writer three batches of the
  // same size, so one 64 KiB blob segment keeps a connection sending one to a few segments.
  size_t receive_chunk = 64 * 1024;
  // While fewer such bodies than this are in flight, a new one is read in steps of io_chunk
  // instead: fewer thread hand-offs per byte for the few large uploads a server usually has,
  // at most this many times ~1.3 MiB of buffers whatever the number of connections.
  size_t large_receive_slots = 2;
  // Most plaintext a GET decrypts per step on a worker, while the previous step's is sent: large,
  // so that a big object costs few thread hops (a GET in flight holds two such buffers); an object
  // under four times this takes four steps of at least io_chunk, so that its steps still overlap.
  size_t get_chunk = 1024 * 1024;
  // While fewer GETs than this step by more than io_chunk, a new one may; the others step by
  // io_chunk, so that many concurrent large GETs hold at most this many times 2 * get_chunk of
  // buffers plus 2 * io_chunk each.
  size_t large_send_slots = 16;
  RequestObserver observer;  // optional
  AdmissionCheck admit;      // optional: everyone is admitted
  BodyAdmission admit_body;  // optional: bodies are not bounded per tenant
  // Where durable writes (commits of PUTs and parts, Complete, DELETE) wait for their flushes,
  // so that they hold no worker meanwhile; null: the worker pool.
  boost::asio::thread_pool* commit_pool = nullptr;
};

class Gateway final : public http::Handler {
 public:
  Gateway(service::ObjectService& service, CredentialLookup lookup, boost::asio::thread_pool& pool,
          GatewayOptions options);
  boost::asio::awaitable<void> Handle(http::Exchange& exchange) override;

  service::ObjectService& service() { return service_; }
  boost::asio::thread_pool& pool() { return pool_; }
  boost::asio::thread_pool& commit_pool() { return options_.commit_pool != nullptr ? *options_.commit_pool : pool_; }
  const CredentialLookup& lookup() const { return lookup_; }
  const GatewayOptions& options() const { return options_; }

  // The options().large_receive_slots bodies read in steps of io_chunk.
  Slots& large_receives() { return large_receives_; }
  // The options().large_send_slots GETs that step by more than io_chunk.
  Slots& large_sends() { return large_sends_; }

 private:
  service::ObjectService& service_;
  CredentialLookup lookup_;
  boost::asio::thread_pool& pool_;
  GatewayOptions options_;
  Slots large_receives_;
  Slots large_sends_;
};

}  // namespace coffre::s3
