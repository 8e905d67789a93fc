#pragma once

// Per-tenant request rate limits (docs/OPERATIONS.md, "rate_limits"): one token bucket per
// tenant, checked after authentication. A request takes a token; a tenant without one gets S3's
// SlowDown (the caller answers it). Buckets refill continuously at `requests_per_second` up to
// `burst` tokens, so a tenant may send `burst` requests at once after a quiet period and
// `requests_per_second` on average.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/clock.h"

namespace coffre::ops {

struct RateLimit {
  double requests_per_second = 0;  // 0: no limit
  double burst = 0;                // bucket size in requests (at least 1 when limited)

  bool unlimited() const { return requests_per_second <= 0; }
  bool operator==(const RateLimit&) const = default;
};

// The configured limits: a default for every tenant, and overrides keyed by tenant id or name
// (an id match wins over a name match).
struct RateLimits {
  RateLimit default_limit;  // unlimited unless set
  std::map<std::string, RateLimit, std::less<>> tenants;

  bool operator==(const RateLimits&) const = default;
};

// Not thread-safe: TenantRateLimiter serializes its use.
class TokenBucket {
 public:
  // Starts full: a tenant's first requests are never refused.
  TokenBucket(RateLimit limit, std::chrono::system_clock::time_point now);
  // Takes one token when there is one. Otherwise returns false and, when `retry_after` is set,
  // how long until the next token.
  bool TryTake(std::chrono::system_clock::time_point now, std::chrono::milliseconds* retry_after = nullptr);
  // A new limit (reload) keeps the tokens saved so far, capped at the new burst.
  void Reconfigure(RateLimit limit, std::chrono::system_clock::time_point now);
  double tokens() const { return tokens_; }

 private:
  void Refill(std::chrono::system_clock::time_point now);

  RateLimit limit_;
  double tokens_;
  std::chrono::system_clock::time_point last_;
};

// Thread-safe: one mutex around a map lookup and a little arithmetic per request.
class TenantRateLimiter {
 public:
  // `clock` must outlive the limiter.
  explicit TenantRateLimiter(const Clock& clock = Clock::System());

  // Replaces the limits (SIGHUP). Tenants keep their saved tokens, capped at their new burst.
  void Configure(RateLimits limits);
  RateLimits limits() const;

  // Whether the tenant may send one more request now (and takes its token). `name_of` returns
  // the tenant's name (nullopt when it cannot be read: then only id and default limits apply);
  // it is called outside the lock, only while some override exists and the name is not yet
  // known. Names are cached: a tenant's name never changes.
  bool Admit(std::string_view tenant_id, const std::function<std::optional<std::string>()>& name_of = {});

  // Tenants with a bucket (seen since start); for tests.
  size_t tracked_tenants() const;

 private:
  struct Tenant {
    std::optional<std::string> name;
    uint64_t generation = 0;            // of the limits its bucket follows
    std::optional<TokenBucket> bucket;  // empty when unlimited
  };
  RateLimit LimitFor(std::string_view tenant_id, const std::optional<std::string>& name) const;
  bool NeedsNames() const;

  const Clock& clock_;
  mutable std::mutex mu_;
  RateLimits limits_;
  uint64_t generation_ = 1;
  std::map<std::string, Tenant, std::less<>> tenants_;
};

// Per-tenant bound on request bodies in flight ("max_bodies_per_tenant"; docs/OPERATIONS.md): a
// body being received holds read buffers, and a small object until it is committed, so one tenant
// with many uploads at once could take the memory every connection needs. Beyond the bound the
// caller answers SlowDown before reading the body. Thread-safe.
class TenantBodyLimiter {
 public:
  // Given back when the last copy is destroyed (the request is over).
  using Slot = std::shared_ptr<void>;

  // 0: no limit. A new bound (SIGHUP) applies to the bodies that start after it; those in flight
  // keep their slots.
  void Configure(uint32_t max_per_tenant);
  // A slot for one more body of this tenant, or null when it already has the maximum in flight.
  // The limiter must outlive its slots.
  Slot TryAcquire(std::string_view tenant_id);

  uint64_t in_flight() const;                            // all tenants
  uint32_t in_flight(std::string_view tenant_id) const;  // for tests

 private:
  struct Held;  // what a slot points to: its destructor gives the slot back
  void Release(const std::string& tenant_id);

  mutable std::mutex mu_;
  uint32_t max_per_tenant_ = 0;
  uint64_t total_ = 0;
  std::map<std::string, uint32_t, std::less<>> counts_;  // tenants with a body in flight
};

}  // namespace coffre::ops
